import { type Static, Type } from 'typebox';
import { Id } from './common.js';

export const User = Type.Object({ id: Id('user id'), username: Type.String() }, { $id: 'User' });
export type UserView = Static<typeof User>;

export const USERNAME_PATTERN = '^[A-Za-z0-9_.-]{3,32}$';
export const Username = Type.String({ pattern: USERNAME_PATTERN, description: '3-32 letters, digits, _ . -' });

export const Credentials = Type.Object({
  username: Username,
  password: Type.String({ minLength: 8, maxLength: 256 }),
});
export const Session = Type.Object({ token: Type.String(), user: Type.Ref('User') });
export type Session = { token: string; user: UserView };
