import type { ChatClient, Session } from '@chat-service/client';
import { h, showError } from './dom.js';

/** Log in, or create the account with the same form. */
export function loginView(client: ChatClient, onSession: (session: Session) => void): HTMLElement {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, minlength: 3, maxlength: 32, dir: 'auto', 'data-testid': 'username' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true, minlength: 8, maxlength: 256, 'data-testid': 'password' });
  const form: HTMLFormElement = h(
    'form',
    { class: 'login', 'data-testid': 'login-form' },
    h('h1', {}, 'Chat'),
    h('label', {}, 'Username', username),
    h('label', {}, 'Password', password),
    h(
      'div',
      { class: 'row' },
      h('button', { type: 'submit', 'data-testid': 'login' }, 'Log in'),
      h('button', { type: 'button', class: 'secondary', 'data-testid': 'register', onclick: () => submit('register') }, 'Create account'),
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void submit('login');
  });

  async function submit(kind: 'login' | 'register'): Promise<void> {
    if (!form.reportValidity()) return;
    for (const button of form.querySelectorAll('button')) button.disabled = true;
    try {
      const session = kind === 'login' ? await client.login(username.value, password.value) : await client.register(username.value, password.value);
      onSession(session);
    } catch (error) {
      showError(form, error);
    } finally {
      for (const button of form.querySelectorAll('button')) button.disabled = false;
    }
  }
  return form;
}
