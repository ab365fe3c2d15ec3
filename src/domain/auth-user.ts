/** The authenticated caller of a request or socket, as every feature sees it. */
export interface AuthUser {
  id: number;
  username: string;
}
