import t from 'tap';
import { restSuite } from './suites/rest.js';

await restSuite(t, 'postgres');
