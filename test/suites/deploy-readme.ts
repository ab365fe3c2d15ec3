/**
 * The README's deployment instructions name npm scripts, compose services and variables, k8s
 * manifests and objects that exist.
 */
import type { Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { pkg } from '../helpers/deploy-context.js';
import { exists, interpolated, k8sDocuments, read, type Doc } from '../helpers/deploy-files.js';

export function deployReadmeSuite(t: Test): void {
  // The README's configuration table is checked against the schema in test/config.test.ts.
  t.test('the README names scripts, services, files and objects that exist', async (t) => {
    const readme = read('README.md');
    const composeText = read('docker-compose.yml');
    const services = (parseYaml(composeText, { merge: true }) as Doc).services as Record<string, Doc>;
    const k8s = [...k8sDocuments().values()].flat();
    const named = (kind: string) => k8s.filter((doc) => doc.kind === kind).map((doc) => doc.metadata?.name as string);
    // Commands are read from code only (sh blocks and `inline` spans), object names also from prose;
    // install, ci, pack and publish are npm's own commands.
    const code = [...readme.matchAll(/```[\s\S]*?```|`[^`\n]+`/g)].map((m) => m[0]).join('\n');
    const each = (text: string, pattern: RegExp, what: string, check: (name: string) => void) => {
      const names = [...new Set([...text.matchAll(pattern)].map((m) => m[1] ?? ''))];
      t.ok(names.length > 0, `the README names ${what}`);
      for (const name of names) check(name);
    };
    const images = (k8sDocuments().get('kustomization.yaml')?.[0]?.images ?? []) as Doc[];

    each(code, /\bnpm (?:run )?(?!install\b|ci\b|run\b|pack\b|publish\b)([\w:-]+)/g, 'npm scripts', (name) => t.ok(pkg.scripts[name], `npm ${name} is a package.json script`));
    each(code, /docker compose [^\n`]*?(?:--scale |logs (?:-f )?)(\w[\w-]*)/g, 'compose services', (name) => t.ok(name in services, `compose service ${name} exists`));
    for (const name of interpolated(composeText)) t.match(readme, `\`${name}\``, `compose variable ${name} is documented`);
    each(code, /\b(k8s\/[\w./-]+\.yaml)\b/g, 'manifests', (path) => t.ok(exists(path), `${path} exists`));
    each(code, /kubectl apply -k (k8s\/[\w/-]*)/g, 'kustomizations', (dir) => t.ok(exists(`${dir.replace(/\/$/, '')}/kustomization.yaml`), `${dir} is a kustomization`));
    // The documented release gates the rollout on the migration: the Job completes before the base is applied.
    const step = (command: string) => code.indexOf(command);
    const release = ['kubectl delete job chat-migrate', 'kubectl apply -k k8s/migrate/', 'kubectl wait --for=condition=complete job/chat-migrate', 'kubectl apply -k k8s/\n', 'kubectl rollout status deployment/'];
    t.ok(release.every((command) => step(command) >= 0), 'the README shows the release sequence');
    t.same([...release].sort((a, b) => step(a) - step(b)), release, 'in this order: delete the old Job, migrate, wait, roll out');
    for (const dir of ['', 'migrate/']) {
      t.ok(code.includes(`(cd k8s${dir ? `/${dir.slice(0, -1)}` : ''} && kustomize edit set image`), `the image is set in k8s/${dir}`);
    }
    each(code, /\bjob[/ ]([a-z][\w-]*)/g, 'the Job', (name) => t.ok(named('Job').includes(name), `Job ${name} exists`));
    each(code, /\bdeployment\/([a-z][\w-]*)/g, 'the Deployment', (name) => t.ok(named('Deployment').includes(name), `Deployment ${name} exists`));
    each(readme, /ConfigMap `([\w-]+)`/g, 'the ConfigMap', (name) => t.ok(named('ConfigMap').includes(name), `ConfigMap ${name} exists`));
    each(readme, /Secret `([\w-]+)`/g, 'the Secret', (name) => t.ok(named('Secret').includes(name), `Secret ${name} exists`));
    each(code, /kustomize edit set image ([\w-]+)=/g, 'the image', (name) => t.ok(images.some((entry) => entry.name === name), `kustomize image ${name} exists`));
  });
}
