// The deploy check's core (scripts/deploy-check.sh prepares tools, renders and the broker).
//   node check.mjs WORKDIR
// WORKDIR/renders/*.yaml are rendered configurations; WORKDIR/boot.json names the boot sets:
//   {"brokerUri": "amqp://...", "repo": "/path", "boots": [{"name": "...", "renders": ["a", "b"], "vhost": "..."}]}
// 1. every object validates against its schema with unknown fields refused (schemas.mjs);
// 2. every pod template passes Pod Security "restricted" and our hardening rules;
// 3. every container's configuration keys belong to sections its host reads, and every path the
//    host reads or writes lies on a volume mount (writable where it writes);
// 4. boot: each workload's real host runs on loopback with exactly its manifest's environment
//    (Secrets filled with test values, Service addresses and mounted paths mapped) and must report
//    ready (Deployments) or run without a configuration error (Jobs).
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import http2 from 'node:http2';
import { spawn, spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { createValidator } from './schemas.mjs';

const work = process.argv[2];
const config = JSON.parse(fs.readFileSync(path.join(work, 'boot.json'), 'utf8'));
const nodeModules = path.join(config.tools, 'node_modules');
const yaml = (await import(pathToFileURL(path.join(nodeModules, 'js-yaml/dist/js-yaml.mjs')).href)).default;
const repo = config.repo;
const DATASET = '/usr/share/datasets/fashion-mnist';
const TEST_KEY = 'deploy-check-test-api-key-0123456789';

// What each image's host reads: configuration sections (anything else with "__" is a key no host
// binds), and the filesystem paths it needs (from a key, its default, or fixed in the code).
const HOSTS = {
  scoring: {
    dll: 'JestMesh.Scoring/bin/Release/net10.0/JestMesh.Scoring.dll', sections: ['Messaging', 'Scoring'],
    paths: [
      { key: 'Scoring__ReferenceDirectory', required: true, why: 'the reference checkpoint' },
      { key: 'Scoring__CachePath', write: true, file: true, why: 'the embedding cache file' },
      { key: 'Scoring__PrecomputedDirectory', why: "`jestmesh score` output loaded into the cache" },
    ],
  },
  selection: { dll: 'JestMesh.Selection/bin/Release/net10.0/JestMesh.Selection.dll', sections: ['Messaging', 'Selection'], paths: [] },
  ingest: {
    dll: 'JestMesh.Ingest/bin/Release/net10.0/JestMesh.Ingest.dll', sections: ['Messaging', 'Ingest'],
    paths: [
      { key: 'Ingest__DataDirectory', default: DATASET, why: 'Fashion-MNIST' },
      { key: 'Ingest__WebDatasetDirectory', why: 'the WebDataset shards it publishes' },
    ],
  },
  trainer: {
    dll: 'JestMesh.Trainer/bin/Release/net10.0/JestMesh.Trainer.dll', sections: ['Trainer'],
    paths: [
      { key: 'Trainer__CheckpointDirectory', required: true, write: true, why: 'the checkpoint (resume after a restart)' },
      { fixed: DATASET, why: 'the evaluator reads Fashion-MNIST there: a fixed default, no key' },
    ],
  },
  cli: {
    dll: 'JestMesh.Cli/bin/Release/net10.0/jestmesh.dll', sections: [], cli: true,
    paths: [
      { arg: '--out', write: true, why: 'the reference checkpoint it writes' },
      { arg: '--data-dir', default: DATASET, why: 'Fashion-MNIST' },
      { arg: '--data', why: 'the WebDataset shards ingest publishes' },
    ],
  },
};
const FRAMEWORK_SECTIONS = ['Logging', 'Kestrel'];
// Paths any host reads when they are set: TLS certificates, keys and CAs (JestMesh.Tls settings of
// each section, Kestrel's own certificate keys, the process-wide CA file).
const COMMON_PATHS = [
  ...['Selection', 'Trainer', 'Messaging'].flatMap(section => [
    { key: `${section}__Tls__CertificateFile`, why: `${section}'s TLS certificate` },
    { key: `${section}__Tls__KeyFile`, why: `${section}'s TLS key` },
    { key: `${section}__Tls__CaFile`, why: `the CA ${section}'s TLS peer must chain to` },
  ]),
  { key: 'Kestrel__Certificates__Default__Path', why: "Kestrel's TLS certificate" },
  { key: 'Kestrel__Certificates__Default__KeyPath', why: "Kestrel's TLS key" },
  { key: 'SSL_CERT_FILE', why: 'the CA certificates TLS clients trust' },
];
const POD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job', 'ReplicaSet'];

const errors = [];
const fail = (where, msg) => errors.push(`${where}: ${msg}`);
const hostOf = image => {
  const base = image.split('/').pop().split(/[:@]/)[0].replace(/-cuda$/, '');
  return HOSTS[base] ? base : null;
};

// ---- load -----------------------------------------------------------------------------------------
const renders = {};
for (const file of fs.readdirSync(path.join(work, 'renders')).filter(f => f.endsWith('.yaml')).sort()) {
  const name = file.replace(/\.yaml$/, '');
  renders[name] = yaml.loadAll(fs.readFileSync(path.join(work, 'renders', file), 'utf8')).filter(Boolean);
}

// ---- 1. schemas -------------------------------------------------------------------------------------
const validate = await createValidator(nodeModules);
let objects = 0;
for (const [name, docs] of Object.entries(renders)) {
  for (const obj of docs) {
    objects++;
    for (const e of await validate(obj)) fail(`${name} ${obj.kind}/${obj.metadata?.name}`, `schema: ${e}`);
    // JSON documents shipped in ConfigMaps (the Grafana dashboard) must parse.
    if (obj.kind === 'ConfigMap') for (const [k, v] of Object.entries(obj.data ?? {})) {
      if (k.endsWith('.json')) { try { JSON.parse(v); } catch (e) { fail(`${name} ConfigMap/${obj.metadata.name}`, `${k} is not valid JSON: ${e.message}`); } }
    }
  }
}
console.log(`deploy-check: schemas: ${objects} objects in ${Object.keys(renders).length} renders checked (Kubernetes 1.30+, KEDA, RabbitmqCluster; unknown fields refused)`);

// ---- 2. Pod Security "restricted" + hardening ----------------------------------------------------
const podSpecOf = obj => POD_KINDS.includes(obj.kind) ? obj.spec?.template?.spec : obj.kind === 'CronJob' ? obj.spec?.jobTemplate?.spec?.template?.spec : obj.kind === 'Pod' ? obj.spec : null;
const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];
function podSecurity(where, pod) {
  const psc = pod.securityContext ?? {};
  for (const k of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[k]) fail(where, `Pod Security: ${k} is not allowed`);
  for (const v of pod.volumes ?? []) {
    const type = Object.keys(v).find(k => k !== 'name');
    if (!RESTRICTED_VOLUMES.includes(type)) fail(where, `Pod Security restricted: volume ${v.name} of type ${type} is not allowed`);
  }
  if (psc.sysctls?.length) fail(where, 'Pod Security: sysctls are not allowed');
  const containers = [...(pod.initContainers ?? []), ...(pod.containers ?? [])];
  for (const c of containers) {
    const sc = c.securityContext ?? {};
    const at = `${where} container ${c.name}`;
    if (sc.privileged) fail(at, 'Pod Security: privileged');
    if (sc.allowPrivilegeEscalation !== false) fail(at, 'Pod Security restricted: securityContext.allowPrivilegeEscalation must be false');
    if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) fail(at, 'Pod Security restricted: runAsNonRoot must be true (pod or container)');
    if ((sc.runAsUser ?? psc.runAsUser) === 0) fail(at, 'Pod Security restricted: runAsUser must not be 0');
    const seccomp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost') fail(at, 'Pod Security restricted: seccompProfile.type must be RuntimeDefault or Localhost');
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) fail(at, 'Pod Security restricted: capabilities.drop must include ALL');
    for (const cap of sc.capabilities?.add ?? []) if (cap !== 'NET_BIND_SERVICE') fail(at, `Pod Security restricted: capability ${cap} may not be added`);
    for (const p of c.ports ?? []) if (p.hostPort) fail(at, 'Pod Security: hostPort is not allowed');
    // Hardening beyond the level: read-only root with a writable /tmp.
    if (sc.readOnlyRootFilesystem !== true) fail(at, 'hardening: readOnlyRootFilesystem must be true');
    else if (!c.command && hostOf(c.image ?? '') && !(c.volumeMounts ?? []).some(m => m.mountPath === '/tmp' && !m.readOnly)) {
      fail(at, 'hardening: a .NET host on a read-only root filesystem needs a writable /tmp mount (emptyDir)');
    }
  }
  if (pod.automountServiceAccountToken !== false) fail(where, 'hardening: automountServiceAccountToken must be false');
}

// ---- 3. configuration keys and mounts --------------------------------------------------------------
function envNames(c, docs) {
  const names = (c.env ?? []).map(e => e.name);
  for (const from of c.envFrom ?? []) {
    const cm = from.configMapRef && docs.find(d => d.kind === 'ConfigMap' && d.metadata.name === from.configMapRef.name);
    if (from.configMapRef && !cm && !from.configMapRef.optional) fail(`container ${c.name}`, `envFrom ConfigMap ${from.configMapRef.name} is not in the rendered configuration`);
    if (cm) names.push(...Object.keys(cm.data ?? {}).map(k => (from.prefix ?? '') + k));
  }
  return names;
}
function argValue(args, flag) {
  const i = (args ?? []).indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}
function mountFor(c, p) {
  return (c.volumeMounts ?? []).filter(m => p === m.mountPath || p.startsWith(m.mountPath.replace(/\/$/, '') + '/'))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
}
function staticEnvValue(c, key) {
  const e = (c.env ?? []).find(x => x.name === key);
  return e?.value;
}
function configAndMounts(where, pod, docs) {
  for (const c of [...(pod.containers ?? [])]) {
    const host = hostOf(c.image ?? '');
    const at = `${where} container ${c.name}`;
    if (!host) {
      // Third-party images (the OpenTelemetry Collector) are checked for Pod Security only.
      if (/(^|\/)jestmesh\//.test(c.image ?? '')) fail(at, `image ${c.image} is no JestMesh host the check knows`);
      continue;
    }
    const spec = HOSTS[host];
    const names = envNames(c, docs);
    for (const n of names) {
      if (!n.includes('__')) continue;
      const section = n.split('__')[0];
      if (![...spec.sections, ...FRAMEWORK_SECTIONS].includes(section)) {
        fail(at, `configuration key ${n.replace(/__/g, ':')}: the ${host} host reads no section "${section}" (it reads ${spec.sections.join(', ') || 'no configuration, only its arguments'})`);
      }
    }
    const volumes = new Map((pod.volumes ?? []).map(v => [v.name, v]));
    for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) fail(at, `volumeMount ${m.mountPath} names volume ${m.name}, which the pod does not have`);
    for (const need of [...spec.paths, ...COMMON_PATHS]) {
      let value;
      if (need.key) value = staticEnvValue(c, need.key) ?? need.default;
      else if (need.arg) value = argValue(c.args, need.arg) ?? need.default;
      else value = need.fixed;
      if (need.arg && !(c.args ?? []).length) continue;
      if (need.arg === '--out' && !(c.args ?? []).includes('--out')) continue;
      if (value === undefined || value === '') {
        if (need.required) fail(at, `${need.key} (${need.why}) is not set`);
        continue;
      }
      if (!value.startsWith('/')) { fail(at, `${need.key ?? need.arg} = ${value} must be an absolute path on a volume`); continue; }
      const m = mountFor(c, value);
      const label = need.key ? need.key.replace(/__/g, ':') : need.arg ?? 'the path';
      if (!m) fail(at, `${label} = ${value} (${need.why}) is on no volume mount: the image does not have it and its root filesystem is read-only (mount dropped?)`);
      else if (need.write && m.readOnly) fail(at, `${label} = ${value} (${need.why}) is written, but its mount ${m.mountPath} is read-only`);
    }
  }
}

for (const [name, docs] of Object.entries(renders)) {
  for (const obj of docs) {
    const pod = podSpecOf(obj);
    if (!pod) continue;
    const where = `${name} ${obj.kind}/${obj.metadata.name}`;
    podSecurity(where, pod);
    if (obj.kind === 'Pod' && obj.metadata?.annotations?.['helm.sh/hook'] === 'test') continue;
    configAndMounts(where, pod, docs);
    if (obj.kind === 'StatefulSet' && obj.spec?.template?.spec?.containers?.some(c => hostOf(c.image) === 'trainer')) {
      fail(where, 'the trainer must be a Job: a finished StatefulSet pod restarts forever');
    }
  }
  const selection = docs.find(d => d.kind === 'Deployment' && d.spec?.template?.spec?.containers?.some(c => hostOf(c.image) === 'selection'));
  // Selection runs any number of replicas (one at a time holds a job), but at least one.
  if (selection && (selection.spec.replicas ?? 1) < 1) {
    fail(`${name} Deployment/${selection.metadata.name}`, 'Selection needs at least one replica: trainers would have nothing to resume on');
  }
  if (name === 'helm-replicas' && selection?.spec.replicas !== 2) {
    fail(`${name} Deployment/${selection?.metadata.name}`, `selection.replicas=2 rendered ${selection?.spec.replicas} replicas`);
  }
  const scaled = docs.filter(d => d.kind === 'ScaledObject').map(d => d.spec.scaleTargetRef.name);
  for (const d of docs) if (d.kind === 'Deployment' && scaled.includes(d.metadata.name) && d.spec.replicas !== undefined) {
    fail(`${name} Deployment/${d.metadata.name}`, 'a fixed spec.replicas fights the ScaledObject that owns it');
  }
}

if (errors.length) {
  console.error(`deploy-check: FAILED before booting (${errors.length}):`);
  for (const e of errors) console.error(`  - ${e}`);
  process.exit(1);
}
console.log('deploy-check: Pod Security "restricted", hardening, configuration sections and mounts: ok');

// ---- 4. boot -------------------------------------------------------------------------------------
const freePort = () => new Promise((resolve, reject) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  s.on('error', reject);
});
const sleep = ms => new Promise(r => setTimeout(r, ms));
const cpu = q => (String(q).endsWith('m') ? Number(String(q).slice(0, -1)) / 1000 : Number(q));

// One test PKI per boot: a self-signed certificate for localhost/127.0.0.1 that is its own CA, copied
// into every Secret volume (tls.crt, tls.key, ca.crt), so TLS servers and the clients trusting the CA match.
// Without an extended key usage it serves as the trainer's client certificate too (it chains to itself).
function testCertificate(dir) {
  const pki = path.join(dir, '..', '..', 'pki');
  if (!fs.existsSync(path.join(pki, 'ca.crt'))) { fs.mkdirSync(pki, { recursive: true }); generateCertificate(pki); }
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) fs.copyFileSync(path.join(pki, f), path.join(dir, f));
}
function generateCertificate(dir) {
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt')], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  fs.copyFileSync(path.join(dir, 'tls.crt'), path.join(dir, 'ca.crt'));
}

function ready(port, tls) {
  return new Promise(resolve => {
    const client = http2.connect(`${tls ? 'https' : 'http'}://127.0.0.1:${port}`, tls ? { rejectUnauthorized: false } : {});
    const done = ok => { resolve(ok); client.destroy(); };
    client.on('error', () => done(false));
    const timer = setTimeout(() => done(false), 3000);
    const req = client.request({ ':path': '/health/ready' });
    req.on('response', h => { clearTimeout(timer); done(h[':status'] === 200); });
    req.on('error', () => { clearTimeout(timer); done(false); });
    req.end();
  });
}

class Proc {
  constructor(label, cmd, args, opts, logFile) {
    this.label = label; this.logFile = logFile; this.exit = null;
    const out = fs.openSync(logFile, 'w');
    this.child = spawn(cmd, args, { ...opts, stdio: ['ignore', out, out], detached: true });
    this.exited = new Promise(r => this.child.on('exit', (code, sig) => { this.exit = code ?? sig; r(this.exit); }));
  }
  log() { return fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : ''; }
  tail(n = 25) {
    // The first exception's message and the log's end without stack frames: what a reader needs.
    const lines = this.log().trimEnd().split('\n');
    const first = lines.find(l => /Exception: /.test(l));
    const shown = lines.filter(l => !/^\s+at /.test(l)).slice(-n);
    return [...(first && !shown.includes(first) ? [first.trim(), '...'] : []), ...shown].map(l => `      | ${l}`).join('\n');
  }
  firstError() {
    const m = /(\w+Exception): (.*)/.exec(this.log());
    return m ? `${m[1]}: ${m[2].slice(0, 400)}` : null;
  }
  async stop() {
    if (this.exit !== null) return;
    try { process.kill(-this.child.pid, 'SIGTERM'); } catch { /* gone */ }
    await Promise.race([this.exited, sleep(10000)]);
    if (this.exit === null) { try { process.kill(-this.child.pid, 'SIGKILL'); } catch { /* gone */ } await this.exited; }
  }
}
const CONFIG_ERROR = /OptionsValidationException|InvalidOperationException: .*configuration|Error binding|invalid setting|was not found in the configuration|Unrecognized command or argument|is not a valid/;

async function boot(set) {
  const docs = set.renders.flatMap(r => renders[r]);
  const root = path.join(work, 'boot', set.name);
  fs.mkdirSync(root, { recursive: true });
  const brokerUri = config.brokerUri.replace(/\/$/, '') + '/' + encodeURIComponent(set.vhost);
  const workloads = docs.filter(d => podSpecOf(d) && d.kind !== 'Pod'
    && podSpecOf(d).containers.every(c => hostOf(c.image ?? '')));
  for (const d of docs.filter(d => podSpecOf(d) && d.kind !== 'Pod' && !workloads.includes(d))) {
    console.log(`  skip ${d.kind}/${d.metadata.name}: not a JestMesh host (${podSpecOf(d).containers.map(c => c.image).join(', ')})`);
  }
  const services = docs.filter(d => d.kind === 'Service');
  const ports = new Map();
  for (const w of workloads) ports.set(w.metadata.name, await freePort());
  const claimDir = claim => {
    const dir = path.join(root, 'pvc', claim);
    if (!fs.existsSync(dir)) fs.mkdirSync(dir, { recursive: true });
    return dir;
  };
  const plan = [];
  const failures = [];
  for (const w of workloads) {
    const pod = podSpecOf(w);
    const volumes = new Map((pod.volumes ?? []).map(v => [v.name, v]));
    const labels = w.spec.template.metadata.labels ?? {};
    for (const [i, c] of [...(pod.initContainers ?? []).map(c => ['init', c]), ...(pod.containers ?? []).map(c => ['main', c])].entries()) {
      const [role, container] = c;
      const mounts = [];
      for (const m of container.volumeMounts ?? []) {
        const v = volumes.get(m.name);
        let dir;
        if (v.persistentVolumeClaim) {
          dir = claimDir(v.persistentVolumeClaim.claimName);
          // A read-only claim mounted where this machine has the data stands for the filled volume
          // (the datasets PVC holds the Debian package's fashion-mnist/).
          if (m.readOnly && fs.existsSync(m.mountPath) && fs.readdirSync(dir).length === 0) {
            for (const entry of fs.readdirSync(m.mountPath)) fs.symlinkSync(path.join(m.mountPath, entry), path.join(dir, entry));
          }
        } else if (v.secret) {
          // A TLS Secret filled with a test certificate (self-signed, so it is its own CA).
          dir = path.join(root, 'secrets', v.secret.secretName);
          if (!fs.existsSync(dir)) {
            fs.mkdirSync(dir, { recursive: true });
            testCertificate(dir);
          }
        } else {
          dir = path.join(root, 'pods', w.metadata.name, m.name);
          fs.mkdirSync(dir, { recursive: true });
        }
        mounts.push({ mountPath: m.mountPath.replace(/\/$/, ''), dir });
      }
      mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
      const mapPath = value => {
        for (const m of mounts) {
          if (value === m.mountPath || value.startsWith(m.mountPath + '/')) return m.dir + value.slice(m.mountPath.length);
        }
        return value;
      };
      const port = ports.get(w.metadata.name);
      const mapAddress = value => value.replace(/\b(https?):\/\/([A-Za-z0-9.+-]+)(:(\d+))?/g, (all, scheme, hostName, _p, p) => {
        if (hostName === '+' || hostName === '*' || hostName === '0.0.0.0') return `${scheme}://127.0.0.1:${port}`;
        const svc = services.find(s => hostName === s.metadata.name || hostName.startsWith(s.metadata.name + '.'));
        if (svc) {
          const target = workloads.find(x => Object.entries(svc.spec.selector ?? {}).every(([k, v]) => x.spec.template.metadata.labels?.[k] === v));
          if (target) return `${scheme}://127.0.0.1:${ports.get(target.metadata.name)}`;
        }
        return `${scheme}://127.0.0.1:1`; // outside the configuration (a collector): nothing listens
      });
      const mapValue = value => mapAddress(mapPath(value));
      // Paths inside a shell command line (an init container's script).
      const mapInline = value => {
        for (const m of mounts) value = value.replace(new RegExp(`(^|[\\s"'=])${m.mountPath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=[/\\s"';]|$)`, 'g'), (all, pre) => pre + m.dir);
        return value;
      };
      const env = {};
      const secretValue = (name, key) => (/rabbitmq|amqp|broker/i.test(name) || /uri|connection_string/i.test(key) ? brokerUri : TEST_KEY);
      for (const from of container.envFrom ?? []) {
        if (from.configMapRef) {
          const cm = docs.find(d => d.kind === 'ConfigMap' && d.metadata.name === from.configMapRef.name);
          for (const [k, v] of Object.entries(cm?.data ?? {})) env[(from.prefix ?? '') + k] = mapValue(String(v));
        }
      }
      for (const e of container.env ?? []) {
        let value = e.value ?? '';
        const vf = e.valueFrom;
        if (vf?.secretKeyRef) value = secretValue(vf.secretKeyRef.name, vf.secretKeyRef.key);
        else if (vf?.configMapKeyRef) value = docs.find(d => d.kind === 'ConfigMap' && d.metadata.name === vf.configMapKeyRef.name)?.data?.[vf.configMapKeyRef.key] ?? '';
        else if (vf?.fieldRef) value = { 'metadata.name': `${w.metadata.name}-0`, 'metadata.namespace': w.metadata.namespace ?? 'default' }[vf.fieldRef.fieldPath] ?? 'x';
        else if (vf?.resourceFieldRef) {
          const [kind, res] = vf.resourceFieldRef.resource.split('.');
          const q = container.resources?.[kind]?.[res] ?? (res === 'cpu' ? '1' : '0');
          value = res === 'cpu' ? String(Math.max(1, Math.ceil(cpu(q) / cpu(vf.resourceFieldRef.divisor ?? '1')))) : String(q);
        } else value = value.replace(/\$\((\w+)\)/g, (all, n) => (n in env ? env[n] : all));
        env[e.name] = vf?.secretKeyRef ? value : mapValue(value);
      }
      const tmp = mounts.find(m => m.mountPath === '/tmp');
      const host = HOSTS[hostOf(container.image)] ?? null;
      const processEnv = {
        PATH: process.env.PATH, HOME: path.join(root, 'home'), DOTNET_CLI_TELEMETRY_OPTOUT: '1', DOTNET_NOLOGO: '1',
        ...(tmp ? { TMPDIR: tmp.dir } : {}), ...env,
      };
      const mapArg = a => { const v = mapValue(a); return v !== a ? v : mapInline(a); };
      const args = (container.args ?? []).map(mapArg);
      const command = (container.command ?? []).map(mapArg);
      plan.push({ workload: w, kind: w.kind, role, container, host, env: processEnv, args, command, port, index: i,
        label: `${w.kind}/${w.metadata.name}${role === 'init' ? ` init ${container.name}` : ''}` });
    }
  }
  fs.mkdirSync(path.join(root, 'home'), { recursive: true });

  const procs = [];
  const start = p => {
    let cmd, args;
    if (p.command.length) { [cmd, ...args] = [...p.command, ...p.args]; }
    else { cmd = 'dotnet'; args = [path.join(repo, 'services', p.host.dll), ...p.args]; }
    const cwd = p.command.length ? root : path.dirname(path.join(repo, 'services', p.host.dll));
    fs.writeFileSync(path.join(root, `${p.workload.metadata.name}-${p.container.name}.env`),
      Object.entries(p.env).map(([k, v]) => `${k}=${v}`).join('\n') + `\n# ${cmd} ${args.join(' ')}\n`);
    const proc = new Proc(p.label, cmd, args, { cwd, env: p.env }, path.join(root, `${p.workload.metadata.name}-${p.container.name}.log`));
    procs.push(proc);
    return proc;
  };
  const report = (p, proc, ok, what) => {
    if (ok) console.log(`  ok   ${p.label}: ${what}`);
    else { failures.push(`${set.name} ${p.label}: ${what}`); console.log(`  FAIL ${p.label}: ${what}\n${proc ? proc.tail() : ''}`); }
  };
  const isReference = p => p.host?.cli && p.args[0] === 'reference';

  try {
    // The reference-training Job first (a hook in the chart, k8s/reference for kustomize): one epoch
    // here instead of the manifest's ten, so the checkpoint exists in minutes. Its output stays.
    for (const p of plan.filter(isReference)) {
      if (config.referenceCache && fs.existsSync(path.join(config.referenceCache, 'metadata.json'))) {
        const out = argValue(p.args, '--out');
        fs.cpSync(config.referenceCache, out, { recursive: true });
        const proc = start({ ...p });
        const code = await Promise.race([proc.exited, sleep(15000).then(() => null)]);
        await proc.stop();
        report(p, proc, code === null || code === 0, code === null ? 'started; checkpoint reused from an earlier boot' : `exit ${code}`);
        continue;
      }
      const proc = start({ ...p, args: [...p.args, '--epochs', '1'] });
      const code = await Promise.race([proc.exited, sleep(300000).then(() => 'timeout')]);
      const out = argValue(p.args, '--out');
      const ok = code === 0 && fs.existsSync(path.join(out, 'metadata.json'));
      report(p, proc, ok, ok ? `completed (--epochs 1), checkpoint in ${out}` : `did not complete: exit ${code}`);
      if (ok && config.referenceCache) fs.cpSync(out, config.referenceCache, { recursive: true });
    }
    // Init containers (e.g. scoring waits for the checkpoint): must finish.
    for (const p of plan.filter(p => p.role === 'init')) {
      const proc = start(p);
      const code = await Promise.race([proc.exited, sleep(30000).then(() => 'timeout')]);
      await proc.stop();
      report(p, proc, code === 0, code === 0 ? 'completed' : `did not complete in 30 s (exit ${code})`);
    }
    // Long-running services: must report ready.
    const services_ = plan.filter(p => p.role === 'main' && p.kind !== 'Job');
    const jobs = plan.filter(p => p.role === 'main' && p.kind === 'Job' && !isReference(p));
    const running = services_.map(p => [p, start(p)]);
    await Promise.all(running.map(async ([p, proc]) => {
      const deadline = Date.now() + (config.readyTimeoutSeconds ?? 240) * 1000;
      while (Date.now() < deadline && proc.exit === null) {
        if (await ready(p.port, (p.env.ASPNETCORE_URLS ?? '').startsWith('https'))) { report(p, proc, true, `ready on 127.0.0.1:${p.port} (/health/ready) after ${Math.round((Date.now() - deadline) / 1000 + (config.readyTimeoutSeconds ?? 240))} s`); return; }
        await sleep(1000);
      }
      report(p, proc, false, proc.exit !== null ? `exited (${proc.exit}) before it was ready${proc.firstError() ? ` — ${proc.firstError()}` : ''}` : 'not ready in time');
    }));
    // Jobs: must run (or finish) without a configuration error.
    const window = (config.jobWindowSeconds ?? 30) * 1000;
    await Promise.all(jobs.map(async p => {
      const proc = start(p);
      if (p.host === HOSTS.trainer) {
        // The trainer must reach Selection (address, TLS trust, API key): its Curate session opens.
        const deadline = Date.now() + (config.trainerConnectSeconds ?? 120) * 1000;
        while (Date.now() < deadline && proc.exit === null && !/Curate session \S+ open/.test(proc.log())) await sleep(1000);
        const opened = /Curate session (\S+) open/.exec(proc.log());
        const configError = CONFIG_ERROR.exec(proc.log());
        if (configError) report(p, proc, false, `configuration error: ${configError[0]}`);
        else if (opened) report(p, proc, true, `reached Selection: Curate session ${opened[1].slice(0, 8)} open, no configuration error`);
        else report(p, proc, false, proc.exit !== null ? `exited (${proc.exit}) before reaching Selection${proc.firstError() ? ` — ${proc.firstError()}` : ''}`
          : `no Curate session with Selection in ${config.trainerConnectSeconds ?? 120} s${proc.firstError() ? ` — ${proc.firstError()}` : ''}`);
        return;
      }
      const code = await Promise.race([proc.exited, sleep(window).then(() => null)]);
      const configError = CONFIG_ERROR.exec(proc.log());
      if (configError) report(p, proc, false, `configuration error: ${configError[0]}`);
      else if (code === null) report(p, proc, true, `running after ${window / 1000} s, no configuration error`);
      else report(p, proc, code === 0, `exited ${code}${code !== 0 && proc.firstError() ? ` — ${proc.firstError()}` : ''}`);
    }));
  } finally {
    await Promise.all(procs.map(p => p.stop()));
  }
  return failures;
}

const bootFailures = [];
for (const set of config.boots) {
  console.log(`deploy-check: booting ${set.name} (${set.renders.join(' + ')}) against the private broker, vhost ${set.vhost}`);
  bootFailures.push(...await boot(set));
  if (bootFailures.length) break; // the first failing set says enough; its logs are kept
}
if (bootFailures.length) {
  console.error(`deploy-check: FAILED at boot (${bootFailures.length}):`);
  for (const f of bootFailures) console.error(`  - ${f}`);
  process.exit(1);
}
console.log(config.boots.length ? 'deploy-check: every workload booted from its rendered configuration' : 'deploy-check: boot skipped (DEPLOY_CHECK_BOOT=0)');
