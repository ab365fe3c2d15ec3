import { Type } from 'typebox';
import { Id } from '../http/schemas.js';

export const User = Type.Object({ id: Id('user id'), username: Type.String() }, { $id: 'User' });

export const USERNAME_PATTERN = '^[A-Za-z0-9_.-]{3,32}$';
export const Username = Type.String({ pattern: USERNAME_PATTERN, description: '3-32 letters, digits, _ . -' });
