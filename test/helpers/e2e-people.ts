/**
 * People of the browser tests (test/e2e-*.test.ts): each in a browser context of their own on
 * one replica, signed up (or logged in) through the page, with the session the page keeps, and
 * the locators and steps the tests share.
 */
import type { Browser, Page } from 'playwright-core';
import type { Test } from 'tap';
import { randomName } from './api.js';
import { newPage } from './browser.js';
import type { Replica } from './replicas.js';

export const PASSWORD = 'correct horse battery';

export interface Person {
  page: Page;
  name: string;
  replica: Replica;
  token: string;
  id: number;
}

/** A new account made through the page (`Create account`); the page's script errors go to `errors`. */
export async function signUp(t: Test, browser: Browser, replica: Replica, label: string, errors: string[][]): Promise<Person> {
  return enter(t, browser, replica, randomName(label), 'register', label, errors);
}

/** An existing account, logged in through a page of its own (another tab or device of theirs). */
export async function logIn(t: Test, browser: Browser, replica: Replica, name: string, errors: string[][]): Promise<Person> {
  return enter(t, browser, replica, name, 'login', name, errors);
}

async function enter(t: Test, browser: Browser, replica: Replica, name: string, button: 'register' | 'login', label: string, errors: string[][]): Promise<Person> {
  const { page, errors: pageErrors } = await newPage(t, browser, label);
  errors.push(pageErrors);
  await page.goto(`${replica.url}/`);
  await page.getByTestId('username').fill(name);
  await page.getByTestId('password').fill(PASSWORD);
  await page.getByTestId(button).click();
  await page.getByTestId('me').filter({ hasText: name }).waitFor();
  await page.locator('[data-testid=connection][data-state=online]').waitFor();
  const session = await page.evaluate(() => JSON.parse(localStorage.getItem('chat.session') ?? '{}') as { token: string; user: { id: number } });
  return { page, name, replica, token: session.token, id: session.user.id };
}

/** JSON over REST as `person`; throws on an error answer. */
export async function api<T>(person: Pick<Person, 'replica' | 'token'>, method: string, path: string, body?: unknown): Promise<T> {
  const response = await person.replica.http(method, path, { token: person.token, body });
  if (response.status >= 300) throw new Error(`${method} ${path}: ${response.status} ${response.body}`);
  return response.json as T;
}

export const listItem = (page: Page, conversationId: number) => page.locator(`[data-testid=conversation][data-id="${conversationId}"]`);
export const messageWithText = (page: Page, text: string) =>
  page.locator('[data-testid=messages] > [data-testid=message]').filter({ has: page.getByTestId('content').getByText(text, { exact: true }) });

/** Types `text` in the composer, sends it and waits for it in the list. */
export async function send(page: Page, text: string): Promise<void> {
  await page.getByTestId('composer').fill(text);
  await page.getByTestId('send').click();
  await messageWithText(page, text).waitFor();
}
