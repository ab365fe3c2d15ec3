/**
 * k8s/: a kustomize base whose manifests agree with each other, with the image and with the
 * config schema: variables, workloads, probes, grace periods, and the objects that route to
 * and scale the pods. Built with `kubectl kustomize` when kubectl is installed.
 */
import { execFileSync } from 'node:child_process';
import type { Test } from 'tap';
import { parseAllDocuments } from 'yaml';
import { known, loads, REQUIRED_IN_PRODUCTION, type DeployContext } from '../helpers/deploy-context.js';
import { ROOT, k8sDocuments, kustomizedFiles, type Doc } from '../helpers/deploy-files.js';

export function deployK8sSuite(t: Test, context: DeployContext): void {
  const { image, serves, built } = context;

  t.test('k8s/: a kustomize base whose manifests agree with each other and with the code', async (t) => {
    const files = k8sDocuments();
    const kustomization = files.get('kustomization.yaml')?.[0];
    const migration = files.get('migrate/kustomization.yaml')?.[0];
    if (!kustomization || !migration) throw new Error('k8s/kustomization.yaml or k8s/migrate/kustomization.yaml is missing');
    // The base (what every image change re-applies), the migration Job apart, monitoring apart.
    const resources = kustomizedFiles(files, '');
    const migrateResources = kustomizedFiles(files, 'migrate');
    const monitoringResources = kustomizedFiles(files, 'monitoring');
    const applied = [...resources, ...migrateResources, ...monitoringResources];
    const all = [...files.entries()].filter(([file]) => !file.endsWith('kustomization.yaml'));
    for (const resource of applied) t.ok(files.has(resource), `resource ${resource} exists`);
    t.notOk(applied.includes('secret.example.yaml'), 'the Secret example is not applied');
    t.same(all.map(([file]) => file).filter((file) => !applied.includes(file)), ['secret.example.yaml'], 'every other manifest is applied by one kustomization');
    const kinds = (paths: string[]): Doc[] => all.filter(([file]) => paths.includes(file)).flatMap(([, docs]) => docs);
    const ofKind = (kind: string, paths = resources): Doc[] => kinds(paths).filter((doc) => doc.kind === kind);
    const one = (kind: string, paths = resources): Doc => {
      const docs = ofKind(kind, paths);
      t.equal(docs.length, 1, `one ${kind}`);
      return docs[0] ?? {};
    };
    const configMap = one('ConfigMap');
    const secret = files.get('secret.example.yaml')?.[0] ?? {};
    const [deployment, service, ingress, hpa, pdb] = ['Deployment', 'Service', 'Ingress', 'HorizontalPodAutoscaler', 'PodDisruptionBudget'].map((kind) => one(kind)) as [Doc, Doc, Doc, Doc, Doc];
    // Jobs are immutable: the base, re-applied with every new image, must not hold one.
    t.same(ofKind('Job'), [], 'no Job in the base');
    const job = one('Job', migrateResources);
    t.same(ofKind('ConfigMap', migrateResources), [configMap], 'the migration applies the same ConfigMap (a first install has no other yet)');
    t.same(kinds(migrateResources).map((doc) => doc.kind).sort(), ['ConfigMap', 'Job'], 'and nothing else');
    t.same(migration.images, kustomization.images, 'the migration runs the image the base runs');

    // Variables: all known, the required ones set, and the set loads.
    t.equal(secret.kind, 'Secret');
    const secretData = secret.stringData as Record<string, string>;
    const configData = configMap.data as Record<string, string>;
    for (const name of [...Object.keys(configData), ...Object.keys(secretData)]) t.ok(known.has(name), `${name} is a config variable`);
    t.same(Object.keys(configData).filter((name) => name in secretData), [], 'no variable in both');
    for (const name of ['JWT_SECRET', 'DATABASE_URL', 'REDIS_URL']) t.ok(secretData[name], `Secret: ${name}`);
    for (const name of REQUIRED_IN_PRODUCTION) t.ok(configData[name] ?? secretData[name], `${name} is set`);
    t.ok(Object.values(secretData).every((value) => /REPLACE/.test(value)), 'the Secret example holds placeholders only');
    const config = loads({ ...image.env, ...configData, ...secretData });
    t.equal(config.NODE_ENV, 'production');
    t.equal(config.PORT, Number(image.args(image.runtime, 'EXPOSE')[0]), 'PORT is the port the image exposes');

    for (const [kind, workload, entry] of [['Deployment', deployment, 'dist/server.js'], ['Job', job, 'dist/migrate.js']] as const) {
      const spec = workload.spec.template.spec as Doc;
      const [container, ...others] = spec.containers as Doc[];
      t.same(others, [], `${kind}: one container`);
      if (!container) continue;
      t.equal(container.image, kustomization.images?.[0]?.name, `${kind}: the kustomize image`);
      t.same(container.command, ['node', entry], `${kind} runs ${entry}`);
      const script = image.script(container.command as string[], container.workingDir);
      t.ok(image.builtFiles.has(script ?? ''), `${kind}: ${script} is a file the build writes into the image`);
      t.same(
        (container.envFrom as Doc[]).map((source) => source.configMapRef?.name ?? source.secretRef?.name),
        [configMap.metadata.name, secret.metadata.name],
        `${kind}: envFrom the ConfigMap and the Secret`,
      );
      for (const variable of (container.env ?? []) as Doc[]) t.ok(known.has(variable.name), `${kind}: env ${variable.name} is a config variable`);
      t.equal(spec.securityContext?.runAsNonRoot, true, `${kind}: runAsNonRoot`);
      t.equal(String(spec.securityContext?.runAsUser), image.args(image.runtime, 'USER').at(-1)?.split(':')[0], `${kind}: runs as the image's user`);
      t.equal(container.securityContext?.readOnlyRootFilesystem, true, `${kind}: readOnlyRootFilesystem`);
      t.equal(container.securityContext?.allowPrivilegeEscalation, false, `${kind}: no privilege escalation`);
      t.same(container.securityContext?.capabilities?.drop, ['ALL'], `${kind}: drops all capabilities`);
      t.ok(container.resources?.requests?.cpu && container.resources?.requests?.memory, `${kind}: requests`);
      t.ok(container.resources?.limits?.memory, `${kind}: limits`);
      const mounts = ((container.volumeMounts ?? []) as Doc[]).map((mount) => mount.mountPath);
      for (const path of ['/tmp', config.DATA_DIR]) t.ok(mounts.includes(path), `${kind}: a writable ${path}`);
      const emptyDirs = ((spec.volumes ?? []) as Doc[]).filter((volume) => volume.emptyDir).map((volume) => volume.name);
      for (const mount of (container.volumeMounts ?? []) as Doc[]) t.ok(emptyDirs.includes(mount.name), `${kind}: ${mount.mountPath} is an emptyDir`);
    }

    // Probes: routes the service answers 200 on, on the container port, which is PORT.
    const podLabels = deployment.spec.template.metadata.labels as Record<string, string>;
    const jobLabels = job.spec.template.metadata.labels as Record<string, string>;
    const pod = deployment.spec.template.spec as Doc;
    const container = pod.containers[0] as Doc;
    const ports = container.ports as Doc[];
    t.equal(ports.length, 1, 'one container port');
    t.equal(ports[0]?.containerPort, config.PORT, 'containerPort is PORT');
    const portOf = (port: string | number): number | undefined =>
      typeof port === 'number' ? port : ports.find((candidate) => candidate.name === port)?.containerPort;
    for (const [probe, path] of Object.entries({ readinessProbe: '/readyz', livenessProbe: '/healthz', startupProbe: undefined })) {
      const get = container[probe]?.httpGet as Doc | undefined;
      if (!get && !path) continue;
      if (path) t.equal(get?.path, path, `${probe}: ${path}`);
      t.equal(portOf(get?.port), config.PORT, `${probe}: on PORT`);
      await serves(t, get?.path, probe);
    }

    // A replica that migrates at start listens only afterwards: its startup probe must outlast the
    // longest migration, or the Job is the one path and replicas listen at once.
    const startup = container.startupProbe as Doc;
    const startupWindow = (startup.periodSeconds ?? 10) * (startup.failureThreshold ?? 3);
    if (config.MIGRATE_ON_START) {
      t.ok(startupWindow >= job.spec.activeDeadlineSeconds, `MIGRATE_ON_START: startup window ${startupWindow} s >= the longest migration (${job.spec.activeDeadlineSeconds} s)`);
    } else {
      t.pass(`MIGRATE_ON_START=false: migrations run in the Job only; the startup probe (${startupWindow} s) covers the process start`);
    }
    t.ok(job.spec.activeDeadlineSeconds > 0, 'the Job has a deadline (kubectl wait covers it)');

    // /metrics is collected: scrape annotations on the pods, and a PodMonitor for the operator.
    const scrape = (deployment.spec.template.metadata.annotations ?? {}) as Record<string, string>;
    t.equal(scrape['prometheus.io/scrape'], 'true', 'pods: prometheus.io/scrape');
    t.equal(Number(scrape['prometheus.io/port']), config.PORT, 'pods: prometheus.io/port is PORT');
    await serves(t, scrape['prometheus.io/path'], 'pods: prometheus.io/path');
    const podMonitor = one('PodMonitor', monitoringResources);
    t.ok(Object.entries(podMonitor.spec.selector.matchLabels as Record<string, string>).every(([key, value]) => podLabels[key] === value), 'PodMonitor selects the pods');
    t.notOk(Object.entries(podMonitor.spec.selector.matchLabels as Record<string, string>).every(([key, value]) => jobLabels[key] === value), 'and not the Job');
    for (const endpoint of podMonitor.spec.podMetricsEndpoints as Doc[]) {
      t.equal(portOf(endpoint.port), config.PORT, `PodMonitor scrapes the container port ${endpoint.port}`);
      await serves(t, endpoint.path, 'PodMonitor path');
    }

    // The grace period outlasts preStop + the drain.
    const preStop = container.lifecycle?.preStop as Doc | undefined;
    // Either the native sleep action or `exec: sleep N`.
    const command = (preStop?.exec?.command ?? []) as string[];
    const sleep = Number(preStop?.sleep?.seconds ?? (command[0] === 'sleep' ? command[1] : NaN));
    t.ok(sleep >= 2 && sleep <= 30, `preStop sleeps ${sleep} s`);
    const grace = pod.terminationGracePeriodSeconds as number;
    const drain = (config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_TIMEOUT_MS) / 1000;
    t.ok(grace > sleep + drain, `terminationGracePeriodSeconds ${grace} > preStop ${sleep} + drain ${drain}`);

    // Service, Ingress, HPA, PDB point at the pods and each other.
    const selects = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => podLabels[key] === value);
    t.ok(selects(deployment.spec.selector.matchLabels), 'Deployment selector matches its pods');
    t.ok(selects(service.spec.selector), 'Service selects the pods');
    t.ok(selects(pdb.spec.selector.matchLabels), 'PDB selects the pods');
    t.notOk(Object.entries(service.spec.selector).every(([key, value]) => jobLabels[key] === value), 'the Service does not select the Job');
    t.not(service.spec.sessionAffinity, 'ClientIP', 'no Service affinity');
    const servicePort = (service.spec.ports as Doc[])[0] ?? {};
    t.equal(portOf(servicePort.targetPort), config.PORT, 'Service targets PORT');
    const paths = (ingress.spec.rules as Doc[]).flatMap((rule) => rule.http.paths as Doc[]);
    for (const path of paths) {
      const backend = path.backend.service as Doc;
      t.equal(backend.name, service.metadata.name, `Ingress ${path.path} routes to the Service`);
      t.ok(backend.port.name === servicePort.name || backend.port.number === servicePort.port, 'on its port');
    }
    const routed = (url: string) => paths.some((path) => (path.pathType === 'Exact' ? url === path.path : url === path.path || url.startsWith(`${path.path.replace(/\/$/, '')}/`)));
    for (const url of ['/', '/api/auth/login/', '/ws/chat/1/', '/ws/notifications/', '/media/attachments/1/a.png', '/docs/', '/openapi.json', '/asyncapi.json']) {
      t.ok(routed(url), `Ingress serves ${url}`);
    }
    // The web client: its page and every file the build writes for it.
    const webFiles = built.filter((file) => file.path.startsWith('dist/web/')).map((file) => `/${file.path.slice('dist/web/'.length)}`);
    t.ok(webFiles.length >= 3, `the build writes the web client (${webFiles.join(', ')})`);
    for (const url of webFiles) t.ok(routed(url), `Ingress serves the web client's ${url}`);
    for (const url of ['/metrics', '/readyz']) t.notOk(routed(url), `Ingress keeps ${url} inside the cluster`);
    for (const path of paths.filter((p) => p.pathType === 'Exact')) await serves(t, path.path, `Ingress ${path.path}`);
    const annotations = ingress.metadata.annotations as Record<string, string>;
    for (const name of ['proxy-read-timeout', 'proxy-send-timeout']) {
      t.ok(Number(annotations[`nginx.ingress.kubernetes.io/${name}`]) >= 3600, `Ingress ${name} >= 3600 s for WebSockets`);
    }
    t.notOk(Object.keys(annotations).some((key) => /affinity|upstream-hash-by|session-cookie/.test(key)), 'no sticky sessions on the Ingress');
    const bodySize = annotations['nginx.ingress.kubernetes.io/proxy-body-size'] ?? '1m';
    t.ok(Number.parseInt(bodySize, 10) * 1024 * 1024 >= config.MAX_ATTACHMENT_BYTES, `Ingress body size ${bodySize} fits MAX_ATTACHMENT_BYTES`);
    t.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name, 'HPA scales the Deployment');
    t.ok(hpa.spec.minReplicas >= 2, 'HPA keeps at least two replicas');
    t.ok((hpa.spec.metrics as Doc[]).some((metric) => metric.resource?.name === 'cpu'), 'HPA on CPU');
    t.equal(deployment.spec.replicas, undefined, 'the HPA, not the Deployment, sets the replica count');
    t.ok(pdb.spec.maxUnavailable !== undefined || pdb.spec.minAvailable < hpa.spec.minReplicas, 'the PDB lets a drain proceed');

    // kustomize itself, when kubectl is here.
    const tagged = `${kustomization.images[0].newName}:${kustomization.images[0].newTag}`;
    const expected: Record<string, string[]> = {
      k8s: ['ConfigMap', 'Deployment', 'HorizontalPodAutoscaler', 'Ingress', 'PodDisruptionBudget', 'Service'],
      'k8s/migrate': ['ConfigMap', 'Job'],
      'k8s/monitoring': ['PodMonitor'],
    };
    for (const [dir, kindsBuilt] of Object.entries(expected)) {
      let kubectl: string | undefined;
      try {
        kubectl = execFileSync('kubectl', ['kustomize', `${ROOT}/${dir}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
        t.comment('kubectl is not installed: kustomize build not run');
        break;
      }
      const kustomized = parseAllDocuments(kubectl).map((doc) => doc.toJS() as Doc);
      t.same(kustomized.map((doc) => doc.kind).sort(), kindsBuilt, `kustomize builds ${dir}/`);
      const workloads = kustomized.filter((doc) => doc.kind === 'Deployment' || doc.kind === 'Job');
      t.ok(workloads.every((doc) => doc.spec.template.spec.containers[0].image === tagged), `${dir}/: image set to ${tagged}`);
    }
  });
}
