/**
 * Every Kubernetes manifest under k8s/ (the files, and what `kubectl kustomize` builds from
 * them when kubectl is here) is valid by the Kubernetes API's own schemas: the OpenAPI
 * definitions compiled into `kubernetes-models` (and its Prometheus Operator models for the
 * PodMonitor), devDependencies. Schema validity is what `kubectl apply` checks first; what
 * the manifests mean is test/deploy-files.test.ts's business.
 */
import { execFileSync } from 'node:child_process';
import t from 'tap';
import { parseAllDocuments } from 'yaml';
import { ROOT, k8sDocuments, type Doc } from './helpers/deploy-files.js';

/** A model class of kubernetes-models: validates the object it was built from, throwing on the first violation. */
type Model = new (data: Doc) => { validate(): void };

/** Where the model of an apiVersion/kind lives (imported by name: the packages are devDependencies). */
function modelModule(apiVersion: string, kind: string): string {
  if (apiVersion.startsWith('monitoring.coreos.com/')) return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
  return `kubernetes-models/${apiVersion}/${kind}`;
}

async function modelOf(doc: Doc): Promise<Model> {
  const module = (await import(modelModule(String(doc.apiVersion), String(doc.kind)))) as Record<string, Model | undefined>;
  const model = module[String(doc.kind)];
  if (!model) throw new Error(`no model for ${doc.apiVersion} ${doc.kind}`);
  return model;
}

/** The first violation, or undefined when the object is valid. */
async function violation(doc: Doc): Promise<string | undefined> {
  const Model = await modelOf(doc);
  try {
    new Model(doc).validate();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** Kustomizations are kustomize's input, not API objects. */
const isApiObject = (doc: Doc) => !String(doc.apiVersion).startsWith('kustomize.config.k8s.io/');

const files = k8sDocuments();

t.test('every manifest file is valid by the Kubernetes schemas', async (t) => {
  let checked = 0;
  for (const [file, docs] of files) {
    for (const doc of docs.filter(isApiObject)) {
      t.equal(await violation(doc), undefined, `k8s/${file}: ${doc.kind} ${doc.metadata?.name}`);
      checked += 1;
    }
  }
  t.ok(checked >= 9, `${checked} objects checked`);
});

t.test('what kustomize builds is valid too', async (t) => {
  for (const dir of ['k8s', 'k8s/migrate', 'k8s/monitoring']) {
    let output: string;
    try {
      output = execFileSync('kubectl', ['kustomize', `${ROOT}/${dir}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      t.comment('kubectl is not installed: kustomize output not validated');
      return;
    }
    const built = parseAllDocuments(output).map((doc) => doc.toJS() as Doc);
    t.ok(built.length > 0, `${dir}/ builds`);
    for (const doc of built) t.equal(await violation(doc), undefined, `${dir}/: ${doc.kind} ${doc.metadata?.name}`);
  }
});

t.test('the validation refuses what the API server would', async (t) => {
  const deployment = [...files.values()].flat().find((doc) => doc.kind === 'Deployment');
  if (!deployment) throw new Error('no Deployment');
  const copy = (): Doc => structuredClone(deployment);
  const wrongType = copy();
  wrongType.spec.template.spec.containers[0].ports[0].containerPort = 'three thousand';
  t.ok(await violation(wrongType), 'a containerPort that is not a number');
  const missing = copy();
  delete missing.spec.selector;
  t.ok(await violation(missing), 'a Deployment without a selector');
  const noImage = copy();
  delete noImage.spec.template.spec.containers[0].name;
  t.ok(await violation(noImage), 'a container without a name');
});
