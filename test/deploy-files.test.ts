/**
 * The deployment files do what the service needs: every variable they set is one the config
 * schema knows (and the set loads), every probe and health check asks a route the service
 * answers 200 on its PORT, the image runs a file the build really writes on the Node major of
 * package.json, services wait for what they use, and the grace periods outlast the drain. No
 * container engine: the files are parsed, the build's bundling step and the health-check
 * commands are run, and the probe paths are asked of a real app.
 */
import t from 'tap';
import { deployContext } from './helpers/deploy-context.js';
import { deployComposeSuite } from './suites/deploy-compose.js';
import { deployImageSuite } from './suites/deploy-image.js';
import { deployK8sSuite } from './suites/deploy-k8s.js';
import { deployReadmeSuite } from './suites/deploy-readme.js';

// One app and one run of the bundler for every suite (test/helpers/deploy-context.ts).
const context = await deployContext(t);
deployImageSuite(t, context);
deployComposeSuite(t, context);
deployK8sSuite(t, context);
deployReadmeSuite(t);
