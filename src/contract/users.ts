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

export const WsTicket = Type.Object({
  ticket: Type.String({ description: 'single use, for `?ticket=` on either socket' }),
  expires_in: Type.Integer({ description: 'seconds it stays valid' }),
});
export type WsTicketView = Static<typeof WsTicket>;

export const ChangePassword = Type.Object({
  current_password: Type.String({ minLength: 1, maxLength: 256 }),
  new_password: Type.String({ minLength: 8, maxLength: 256 }),
});

export const DeleteAccount = Type.Object({ password: Type.String({ minLength: 1, maxLength: 256 }) });
