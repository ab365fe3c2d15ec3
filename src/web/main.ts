/** The web client's entry point: restores a saved session or asks for one. */
import { ApiError, ChatClient, type Session } from '@chat-service/client';
import { clear, showError } from './dom.js';
import { loginView } from './login-view.js';
import { Workspace } from './workspace.js';

const SESSION_KEY = 'chat.session';
const root = document.getElementById('app')!;
const client = new ChatClient({ baseUrl: location.origin });
let workspace: Workspace | undefined;

function saveSession(session: Session): void {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

function showLogin(notice?: string): void {
  workspace?.destroy();
  workspace = undefined;
  client.token = undefined;
  localStorage.removeItem(SESSION_KEY);
  clear(root);
  root.append(
    loginView(client, (session) => {
      saveSession(session);
      showWorkspace(session);
    }),
  );
  if (notice) showError(root, notice);
}

function showWorkspace(session: Session): void {
  clear(root);
  workspace = new Workspace(client, session.user, (everywhere) => void logout(everywhere), () => showLogin('Your session has expired; please log in again.'));
  root.append(workspace.element);
  void workspace.start();
}

/** Ends the session on the service too: its token is refused from then on, on every replica. */
async function logout(everywhere: boolean): Promise<void> {
  // The workspace's sockets go first, so their 4401 is not mistaken for an expired session.
  workspace?.destroy();
  workspace = undefined;
  try {
    await (everywhere ? client.logoutAll() : client.logout());
  } catch {
    // Already refused or unreachable: the local session ends all the same.
  }
  showLogin();
}

async function boot(): Promise<void> {
  const saved = localStorage.getItem(SESSION_KEY);
  if (!saved) return showLogin();
  let session: Session;
  try {
    session = JSON.parse(saved) as Session;
    client.token = session.token;
    session = { token: session.token, user: await client.me() };
  } catch (error) {
    return showLogin(error instanceof ApiError && error.statusCode === 401 ? 'Your session has expired; please log in again.' : undefined);
  }
  showWorkspace(session);
}

void boot();
