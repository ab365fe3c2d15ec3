import type { ConversationState, MemberState } from '@chat-service/client';
import { h } from './dom.js';
import { type PresenceBadge, type PresenceLookup, presenceBadge } from './presence-dot.js';

export interface MemberActions {
  add(names: string[]): Promise<void>;
  remove(member: MemberState): Promise<void>;
  setRole(member: MemberState, role: 'admin' | 'member'): Promise<void>;
  rename(title: string): Promise<void>;
  leave(): Promise<void>;
}

const ROLE_ORDER = { owner: 0, admin: 1, member: 2 } as const;

/**
 * Who is in the conversation and, for those allowed, the changes: owner and admins add,
 * remove (never the owner) and rename; only the owner promotes and demotes; anyone leaves a
 * group. Direct conversations never change. `render` again after every state change.
 */
export class MembersPanel {
  readonly element = h('section', { class: 'members-panel', 'aria-label': 'Members', 'data-testid': 'members-panel' });
  /** Kept across renders so that typing is not lost when an event re-renders the panel. */
  private readonly addInput = h('input', { 'aria-label': 'Add members', placeholder: 'usernames, comma separated', dir: 'auto', 'data-testid': 'add-members' });
  private readonly titleInput = h('input', { 'aria-label': 'Group name', maxlength: 100, dir: 'auto', 'data-testid': 'rename-input' });
  private readonly addForm: HTMLFormElement;
  private readonly renameForm: HTMLFormElement;
  private titleShown: string | null | undefined;
  private presence: PresenceLookup | undefined;
  /** The rows' dots and "last seen" lines, by user id, updated in place as presence changes. */
  private badges = new Map<number, PresenceBadge>();

  constructor(
    private readonly myId: number,
    private readonly actions: MemberActions,
    private readonly onError: (error: unknown) => void,
  ) {
    this.addForm = h('form', { class: 'row' }, this.addInput, h('button', { type: 'submit' }, 'Add'));
    this.addForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const names = this.addInput.value.split(',').map((name) => name.trim()).filter(Boolean);
      if (names.length === 0) return;
      this.run(this.actions.add(names).then(() => void (this.addInput.value = '')));
    });
    this.renameForm = h('form', { class: 'row' }, this.titleInput, h('button', { type: 'submit' }, 'Rename'));
    this.renameForm.addEventListener('submit', (event) => {
      event.preventDefault();
      const title = this.titleInput.value.trim();
      if (title !== '') this.run(this.actions.rename(title));
    });
  }

  /** Where the dots come from; `showPresence` after each change of it (and to age the "last seen" lines). */
  setPresence(presence: PresenceLookup): void {
    this.presence = presence;
    this.showPresence();
  }

  showPresence(now = Date.now()): void {
    for (const [userId, badge] of this.badges) badge.show(this.presence?.get(userId), this.presence?.fresh ?? false, now);
  }

  render(state: ConversationState): void {
    const members = [...state.members.values()].sort((a, b) => ROLE_ORDER[a.role] - ROLE_ORDER[b.role] || a.username.localeCompare(b.username));
    const isOwner = state.myRole === 'owner';
    if (this.titleShown !== state.title) {
      this.titleShown = state.title;
      this.titleInput.value = state.title ?? '';
    }
    this.badges = new Map();
    const list = h(
      'ul',
      { class: 'members', 'data-testid': 'members' },
      ...members.map((member) => {
        const me = member.id === this.myId;
        const controls: HTMLElement[] = [];
        if (state.kind === 'group' && !me) {
          if (isOwner) {
            controls.push(
              member.role === 'admin'
                ? this.button(`Make ${member.username} member`, 'demote', () => this.actions.setRole(member, 'member'))
                : member.role === 'member'
                  ? this.button(`Make ${member.username} admin`, 'promote', () => this.actions.setRole(member, 'admin'))
                  : h('span'),
            );
          }
          if (state.canManage && member.role !== 'owner') controls.push(this.button(`Remove ${member.username}`, 'remove', () => this.actions.remove(member), 'link danger'));
        }
        const badge = presenceBadge();
        this.badges.set(member.id, badge);
        return h(
          'li',
          { 'data-testid': 'member', 'data-id': member.id, 'data-role': member.role },
          badge.dot,
          h('span', { class: 'name', dir: 'auto' }, member.username, me ? ' (you)' : ''),
          !me && badge.text,
          member.role !== 'member' && h('span', { class: 'role', 'data-testid': 'role' }, member.role),
          h('span', { class: 'tools' }, ...controls),
        );
      }),
    );
    const parts: HTMLElement[] = [h('h3', {}, state.kind === 'direct' ? 'Direct conversation' : `Members (${state.members.size})`), list];
    if (state.canManage) parts.push(this.addForm, this.renameForm);
    if (state.kind === 'group') parts.push(this.button('Leave conversation', 'leave', () => this.actions.leave(), 'secondary'));
    this.element.replaceChildren(...parts);
    this.showPresence();
  }

  private button(label: string, kind: string, action: () => Promise<void>, style = 'link'): HTMLButtonElement {
    // Visible text is short; the accessible name says whom it is about.
    const text = { demote: 'make member', promote: 'make admin', remove: 'remove', leave: 'Leave conversation' }[kind] ?? label;
    return h('button', { type: 'button', class: style, 'aria-label': label, 'data-testid': kind, onclick: () => this.run(action()) }, text);
  }

  private run(work: Promise<void>): void {
    work.catch((error: unknown) => this.onError(error));
  }
}
