// Schema validation of rendered manifests, offline:
//  - kubernetes-models (Kubernetes 1.30+ OpenAPI), @kubernetes-models/keda and /prometheus-operator
//    validate each object;
//  - those validators accept unknown fields, so a second, strict pass walks each object against the
//    field lists of the packages' type declarations (.d.ts) and refuses any field the API does not have
//    (kubectl apply would drop it silently, or refuse it with --validate=strict);
//  - RabbitmqCluster (no npm models) is checked with Ajv against a vendored subset of the operator's CRD.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const here = path.dirname(new URL(import.meta.url).pathname);

export async function createValidator(nodeModules) {
  const types = loadDeclarations(nodeModules);
  const require = createRequire(path.join(nodeModules, 'x.js'));
  const Ajv = require('ajv');
  const ajv = new Ajv({ allErrors: true, strict: false });
  const rabbit = ajv.compile(JSON.parse(fs.readFileSync(path.join(here, 'rabbitmqcluster.schema.json'), 'utf8')));

  const modelFile = (apiVersion, kind) => {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    if (group === 'keda.sh') return path.join(nodeModules, '@kubernetes-models/keda/keda.sh', version, `${kind}.js`);
    if (group === 'monitoring.coreos.com') return path.join(nodeModules, '@kubernetes-models/prometheus-operator/monitoring.coreos.com', version, `${kind}.js`);
    const dir = group === '' ? version : path.join(group, version);
    return path.join(nodeModules, 'kubernetes-models', dir, `${kind}.js`);
  };

  return async function validate(obj) {
    const errors = [];
    const { apiVersion, kind } = obj;
    if (apiVersion === 'rabbitmq.com/v1beta1' && kind === 'RabbitmqCluster') {
      if (!rabbit(obj)) errors.push(...rabbit.errors.map(e => `${e.instancePath || '/'} ${e.message}${e.params?.additionalProperty ? `: ${e.params.additionalProperty}` : ''}`));
      return errors;
    }
    const file = modelFile(apiVersion ?? '', kind ?? '');
    if (!fs.existsSync(file)) return [`no schema for ${apiVersion} ${kind} (not a Kubernetes 1.30+ or KEDA kind)`];
    const mod = await import(pathToFileURL(file).href);
    const Model = mod[kind];
    try {
      new Model(obj).validate();
    } catch (e) {
      errors.push(e.message.split('\n').slice(0, 6).join('; '));
    }
    const root = rootInterface(file.replace(/\.js$/, '.d.ts'));
    if (root) strictWalk(obj, { kind: 'ref', name: root }, '', types, errors);
    return errors;
  };
}

// ---- type declarations -> field lists -------------------------------------------------------------

function* declarationFiles(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) { if (entry.name !== 'node_modules') yield* declarationFiles(p); }
    else if (entry.name.endsWith('.d.ts')) yield p;
  }
}

function loadDeclarations(nodeModules) {
  const types = new Map();
  for (const pkg of ['kubernetes-models', '@kubernetes-models/apimachinery', '@kubernetes-models/keda', '@kubernetes-models/prometheus-operator']) {
    const dir = path.join(nodeModules, pkg);
    if (!fs.existsSync(dir)) continue;
    for (const file of declarationFiles(dir)) {
      const text = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');
      const local = new Map();
      const re = /export interface (\w+)(?:\s+extends\s+([\w, ]+))?\s*\{/g;
      let m;
      while ((m = re.exec(text))) {
        const start = re.lastIndex;
        const end = matchBrace(text, start - 1);
        const body = parseBody(text.slice(start, end));
        if (m[2] && /\bTypeMeta\b/.test(m[2])) {
          body.fields.apiVersion ??= { kind: 'any' };
          body.fields.kind ??= { kind: 'any' };
        }
        local.set(m[1], body);
      }
      for (const [name, body] of local) if (!types.has(name)) types.set(name, body);
      const alias = /export type \{([^}]*)\}/g;
      while ((m = alias.exec(text))) {
        for (const part of m[1].split(',')) {
          const [from, to] = part.split(/\s+as\s+/).map(s => s.trim());
          if (to && local.has(from)) types.set(to, local.get(from));
        }
      }
    }
  }
  return types;
}

function rootInterface(dts) {
  if (!fs.existsSync(dts)) return null;
  const m = /export type \{\s*(\w+) as (\w+)/.exec(fs.readFileSync(dts, 'utf8'));
  return m ? m[2] : null;
}

function matchBrace(text, open) {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return i;
  }
  return text.length;
}

function readType(s, i) {
  // Up to the ';' (or end) at bracket depth 0.
  let depth = 0; const start = i;
  for (; i < s.length; i++) {
    const c = s[i];
    if ('{<(['.includes(c)) depth++;
    else if ('}>)]'.includes(c)) depth--;
    else if (c === ';' && depth === 0) break;
    else if (c === '"') { i = s.indexOf('"', i + 1); }
  }
  return [s.slice(start, i), i + 1];
}

function parseBody(s) {
  const fields = {}; let index = null; let i = 0;
  while (i < s.length) {
    const rest = s.slice(i);
    const ws = /^\s+/.exec(rest);
    if (ws) { i += ws[0].length; continue; }
    const idx = /^\[\s*\w+\s*:\s*string\s*\]\s*:\s*/.exec(rest);
    if (idx) { const [t, next] = readType(s, i + idx[0].length); index = parseType(t); i = next; continue; }
    const field = /^(?:readonly\s+)?(?:"([^"]+)"|(\w+))\??\s*:\s*/.exec(rest);
    if (field) { const [t, next] = readType(s, i + field[0].length); fields[field[1] ?? field[2]] = parseType(t); i = next; continue; }
    i++;
  }
  return { kind: 'object', fields, index };
}

function parseType(t) {
  t = t.trim();
  if (t.startsWith('{') && matchBrace(t, 0) === t.length - 1) return parseBody(t.slice(1, -1));
  let m = /^Array<([\s\S]*)>$/.exec(t);
  if (m) return { kind: 'array', of: parseType(m[1]) };
  m = /^(I\w+)\[\]$/.exec(t);
  if (m) return { kind: 'array', of: { kind: 'ref', name: m[1] } };
  if (/^I\w+$/.test(t)) return { kind: 'ref', name: t };
  return { kind: 'any' };
}

function strictWalk(value, type, at, types, errors) {
  while (type.kind === 'ref') {
    type = types.get(type.name);
    if (!type) return;
  }
  if (type.kind === 'array' && Array.isArray(value)) value.forEach((v, i) => strictWalk(v, type.of, `${at}[${i}]`, types, errors));
  if (type.kind !== 'object' || value === null || typeof value !== 'object' || Array.isArray(value)) return;
  if (!type.index && Object.keys(type.fields).length === 0) return; // free-form (RawExtension, FieldsV1)
  for (const [key, v] of Object.entries(value)) {
    const fieldType = type.fields[key] ?? type.index;
    if (!fieldType) errors.push(`${at}.${key}: unknown field (not in the API schema)`);
    else strictWalk(v, fieldType, `${at}.${key}`, types, errors);
  }
}
