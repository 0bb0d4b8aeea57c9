#!/usr/bin/env node
// The official @qdrant/js-client-rest (npm) against vexfs-serve, checked
// against a plain-JS brute force.
//
// Usage: node flow.mjs --url http://127.0.0.1:PORT --api-key KEY [--points 2000]
//        (the client is loaded from $QDRANT_JS_DIR, default target/qdrant-js,
//        where scripts/http-clients-setup installs it)
//
// Creates collections (Cosine, Euclid, Dot), upserts points with payloads in
// the points-list and the batch form, and checks search (POST …/points/search),
// query (by vector and by id), filters, retrieve, scroll, count, payload
// updates, deletes and collection info against the points it sent, with
// Qdrant's scores (cosine similarity, euclid distance, dot product). Then 401
// without the key, 400 for malformed JSON and a UUID id, 100 concurrent
// clients, and sockets closed mid-request. Exits 1 naming the first mismatch.

import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modDir = process.env.QDRANT_JS_DIR ?? path.resolve(here, '../../../target/qdrant-js');
const require = createRequire(path.join(modDir, 'package.json'));
const { QdrantClient } = require('@qdrant/js-client-rest');
const clientVersion = JSON.parse(
  readFileSync(path.join(modDir, 'node_modules/@qdrant/js-client-rest/package.json'), 'utf8'),
).version;

const DIM = 32;
// Scores: f32 arithmetic on the server, float64 here.
const ABS_TOL = 3e-5;
const REL_TOL = 1e-5;
const PREFIX = 'flow_js_';
const CITIES = ['London', 'Paris', 'Berlin', 'Tokyo', 'Lima', 'Oslo'];
const TAGS = ['news', 'blog', 'tech', 'sport', 'art'];

class Mismatch extends Error {}
const check = (cond, msg) => {
  if (!cond) throw new Mismatch(msg);
};
const close = (a, b) => Math.abs(a - b) <= ABS_TOL + REL_TOL * Math.abs(b);
const J = (x) => JSON.stringify(x);
const deepEqual = (a, b) => J(sortKeys(a)) === J(sortKeys(b));
function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  return v;
}

// The client warns about an api key over http on every construction: expected here.
const warn = console.warn;
console.warn = (...a) => {
  if (!String(a[0]).startsWith('Api key is used with unsecure connection')) warn(...a);
};

// ------------------------------------------------------------ deterministic data

function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    random: next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    choice: (a) => a[Math.floor(next() * a.length)],
    sample: (a, k) => {
      const c = [...a];
      for (let i = c.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [c[i], c[j]] = [c[j], c[i]];
      }
      return c.slice(0, k);
    },
    gauss: () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next()),
  };
  r.vec = (scale = 1) => Array.from({ length: DIM }, () => Math.fround(r.gauss() * scale));
  return r;
}
const R = rng(29);

function makePayload() {
  const p = { city: R.choice(CITIES), year: R.int(1990, 2025) };
  const r = R.random();
  if (r >= 0.2) p.tags = R.sample(TAGS, R.int(1, 3));
  else if (r >= 0.1) p.tags = [];
  if (R.random() < 0.95) p.meta = { score: Math.round(R.random() * 1e6) / 1e6, lang: R.choice(['en', 'de']) };
  if (R.random() < 0.05) p.note = null;
  return p;
}

// ------------------------------------------------------------ Qdrant's filter semantics

function values(payload, key) {
  let cur = [payload];
  for (const part of key.split('.')) {
    cur = cur.filter((c) => c && typeof c === 'object' && !Array.isArray(c) && part in c).map((c) => c[part]);
  }
  return cur.flatMap((v) => (Array.isArray(v) ? v : [v]));
}
const isInt = (v) => typeof v === 'number' && Number.isInteger(v);
function matchOne(m, v) {
  if ('value' in m) {
    if (typeof m.value === 'string' || typeof m.value === 'boolean') return v === m.value;
    return isInt(v) && v === m.value;
  }
  if ('any' in m) return (typeof v === 'string' || isInt(v)) && m.any.includes(v);
  if ('except' in m) {
    if (v === null) return false;
    if (typeof v === 'string' || isInt(v)) return !m.except.includes(v);
    return true;
  }
  throw new Error(`flow.mjs: unknown match ${J(m)}`);
}
function condHolds(c, id, p) {
  if ('must' in c || 'should' in c || 'must_not' in c) return filterHolds(c, id, p);
  if ('has_id' in c) return c.has_id.includes(id);
  if ('is_empty' in c) return values(p, c.is_empty.key).every((v) => v === null);
  const vs = values(p, c.key);
  if (c.match) return vs.some((v) => matchOne(c.match, v));
  if (c.range) {
    const r = c.range;
    const inr = (x) =>
      (r.gt == null || x > r.gt) && (r.gte == null || x >= r.gte) && (r.lt == null || x < r.lt) && (r.lte == null || x <= r.lte);
    return vs.some((v) => typeof v === 'number' && inr(v));
  }
  throw new Error(`flow.mjs: unknown condition ${J(c)}`);
}
const asList = (x) => (x == null ? [] : Array.isArray(x) ? x : [x]);
function filterHolds(f, id, p) {
  if (!f) return true;
  if (!asList(f.must).every((c) => condHolds(c, id, p))) return false;
  if (f.should != null && !asList(f.should).some((c) => condHolds(c, id, p))) return false;
  return !asList(f.must_not).some((c) => condHolds(c, id, p));
}

// ------------------------------------------------------------ the expected state

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
class Collection {
  constructor(name, distance) {
    Object.assign(this, { name, distance, vecs: new Map(), payloads: new Map() });
  }
  stored(v) {
    if (this.distance !== 'Cosine') return v.map(Math.fround);
    const n = norm(v);
    return v.map((x) => Math.fround(x / n));
  }
  put(id, v, payload) {
    this.vecs.set(id, this.stored(v));
    this.payloads.set(id, payload ?? {});
  }
  del(id) {
    this.vecs.delete(id);
    this.payloads.delete(id);
  }
  matching(f) {
    return [...this.vecs.keys()].filter((id) => filterHolds(f, id, this.payloads.get(id)));
  }
  score(id, q) {
    const v = this.vecs.get(id);
    const qq = this.stored(q);
    if (this.distance === 'Euclid') return Math.sqrt(v.reduce((s, x, i) => s + (x - qq[i]) ** 2, 0));
    return v.reduce((s, x, i) => s + x * qq[i], 0);
  }
  ranked(q, ids) {
    const s = ids.map((id) => [id, this.score(id, q)]);
    const sign = this.distance === 'Euclid' ? 1 : -1;
    return s.sort((a, b) => sign * (a[1] - b[1]) || a[0] - b[0]);
  }
}

function checkRanking(tag, coll, got, q, { filter, limit = 10, offset = 0, threshold, exclude = [] } = {}) {
  const cands = coll.matching(filter).filter((id) => !exclude.includes(id));
  let exp = coll.ranked(q, cands);
  if (threshold != null) exp = exp.filter(([, s]) => (coll.distance === 'Euclid' ? s <= threshold : s >= threshold));
  exp = exp.slice(offset, offset + limit);
  const where = `${tag} [${coll.name}, ${coll.distance}, filter=${J(filter ?? null)}]`;
  check(got.length === exp.length,
    `${where}: ${got.length} results, brute force has ${exp.length}: got ${J(got.map((g) => g.id))}, expected ${J(exp.map((e) => e[0]))}`);
  const cset = new Set(cands);
  const seen = new Set();
  got.forEach((g, i) => {
    check(!seen.has(g.id), `${where}: id ${g.id} returned twice`);
    seen.add(g.id);
    check(cset.has(g.id), `${where}: rank ${i}: id ${g.id} does not match the filter / is not stored`);
    check(close(g.score, exp[i][1]), `${where}: rank ${i}: id ${g.id} score ${g.score}, brute force rank ${i} is id ${exp[i][0]} score ${exp[i][1]}`);
    const t = coll.score(g.id, q);
    check(close(g.score, t), `${where}: rank ${i}: id ${g.id} reported score ${g.score}, its true score ${t}`);
  });
}

async function expectStatus(tag, status, fn) {
  try {
    await fn();
  } catch (e) {
    check(e.status === status, `${tag}: ${e.status ? `HTTP ${e.status}` : `${e.name}: ${e.message}`}, expected HTTP ${status}; body ${J(e.data)?.slice(0, 300)}`);
    if (status !== 401) {
      check(e.data && typeof e.data.status === 'object' && 'error' in e.data.status,
        `${tag}: error body is not Qdrant's {"status": {"error": …}}: ${J(e.data)?.slice(0, 300)}`);
    }
    return;
  }
  throw new Mismatch(`${tag}: succeeded, expected HTTP ${status}`);
}

// ------------------------------------------------------------ the flow

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
if (!args.url || !args['api-key']) {
  console.error('usage: node flow.mjs --url URL --api-key KEY [--points N]');
  process.exit(2);
}
const URL_ = args.url;
const KEY = args['api-key'];
const N = Number(args.points ?? 2000);
const client = new QdrantClient({ url: URL_, apiKey: KEY, timeout: 60_000 });
const cos = new Collection(`${PREFIX}cos`, 'Cosine');
const l2 = new Collection(`${PREFIX}l2`, 'Euclid');
const dot = new Collection(`${PREFIX}dot`, 'Dot');
let ids = [];

const F = {
  value: (key, value) => ({ key, match: { value } }),
  any: (key, any) => ({ key, match: { any } }),
  except: (key, except) => ({ key, match: { except } }),
  range: (key, range) => ({ key, range }),
};
function filters() {
  const some = R.sample(ids, 40);
  return [
    { must: [F.value('city', 'London')] },
    { must: [F.any('city', ['Paris', 'Berlin']), F.range('year', { gte: 2000, lt: 2015 })] },
    { should: [F.value('tags', 'news'), F.range('meta.score', { gt: 0.9 })], must_not: [F.value('city', 'Tokyo')] },
    { must: [F.except('tags', ['news', 'blog'])] },
    { must: [F.except('city', ['London', 'Paris', 'Oslo'])] },
    { must: [{ has_id: some }] },
    { must: [{ has_id: some }, F.range('year', { lte: 2005 })] },
    { must: [{ is_empty: { key: 'tags' } }] },
    { must_not: [{ is_empty: { key: 'meta.score' } }], must: [F.value('meta.lang', 'de')] },
    { must: [F.value('year', 2001)] },
    { must: [F.any('year', [1999, 2005, 2010])] },
    { must: [{ should: [F.value('city', 'Lima'), { must: [F.range('meta.score', { lt: 0.1 })] }] }], must_not: [F.any('tags', ['art'])] },
    { must: [F.value('city', 'Atlantis')] },
  ];
}

async function version() {
  // The client's own rule (it only warns): same major, minors at most 1 apart.
  const root = await raw('GET', '/');
  check(root.status === 200 && typeof root.data?.version === 'string',
    `GET /: HTTP ${root.status} ${J(root.data).slice(0, 200)}; Qdrant answers a bare {"title": …, "version": …}, no result envelope, and the clients read it so`);
  const theirs = (await client.versionInfo()).version;
  const [a, b] = [clientVersion, String(theirs)].map((v) => v.split('.').map(Number));
  check(a[0] === b[0] && Math.abs(a[1] - b[1]) <= 1,
    `GET / says version ${J(theirs)}, which @qdrant/js-client-rest ${clientVersion} calls incompatible`);
}

async function fresh(coll) {
  if ((await client.collectionExists(coll.name)).exists) await client.deleteCollection(coll.name);
  check((await client.createCollection(coll.name, { vectors: { size: DIM, distance: coll.distance } })) === true,
    `createCollection(${coll.name}) did not return true`);
}

async function upsert() {
  ids = [...Array.from({ length: N - 10 }, (_, i) => 3 * i + 2), ...Array.from({ length: 10 }, (_, i) => 2 ** 40 + 7 * i + 1)];
  ids = R.sample(ids, ids.length);
  const vecs = ids.map(() => R.vec());
  const pls = ids.map(() => makePayload());
  const half = Math.floor(N / 2);
  for (let s = 0; s < half; s += 250) {
    const e = Math.min(s + 250, half);
    const points = [];
    for (let i = s; i < e; i++) points.push({ id: ids[i], vector: vecs[i], payload: pls[i] });
    const r = await client.upsert(cos.name, { wait: true, points });
    check(r.status === 'completed', `upsert (points) status ${J(r)}`);
  }
  for (let s = half; s < N; s += 250) {
    const e = Math.min(s + 250, N);
    const r = await client.upsert(cos.name, { wait: true, batch: { ids: ids.slice(s, e), vectors: vecs.slice(s, e), payloads: pls.slice(s, e) } });
    check(r.status === 'completed', `upsert (batch) status ${J(r)}`);
  }
  ids.forEach((id, i) => cos.put(id, vecs[i], pls[i]));
  for (const id of ids.slice(0, 5)) {
    const v = R.vec();
    const p = { city: 'Quito', year: 2000, tags: ['new'] };
    await client.upsert(cos.name, { wait: true, points: [{ id, vector: v, payload: p }] });
    cos.put(id, v, p);
  }
  for (const coll of [l2, dot]) {
    const m = 300;
    const mids = Array.from({ length: m }, (_, i) => 10 + i);
    const mv = mids.map(() => R.vec(2));
    await client.upsert(coll.name, { wait: true, batch: { ids: mids, vectors: mv } });
    mids.forEach((id, i) => coll.put(id, mv[i]));
  }
}

async function info() {
  for (const coll of [cos, l2, dot]) {
    const ci = await client.getCollection(coll.name);
    check(ci.points_count === coll.vecs.size, `getCollection(${coll.name}).points_count = ${ci.points_count}, expected ${coll.vecs.size}`);
    const vp = ci.config.params.vectors;
    check(vp.size === DIM && vp.distance === coll.distance, `getCollection(${coll.name}) vectors ${J(vp)}`);
    check((await client.collectionExists(coll.name)).exists === true, `collectionExists(${coll.name})`);
  }
  check((await client.collectionExists(`${PREFIX}nope`)).exists === false, 'collectionExists(missing) is not false');
  const names = new Set((await client.getCollections()).collections.map((c) => c.name));
  check([cos, l2, dot].every((c) => names.has(c.name)), `getCollections() = ${J([...names])}`);
}

const query = async (coll, q, opts = {}) => (await client.query(coll.name, { query: q, limit: 10, ...opts })).points;
const search = (coll, v, opts = {}) => client.search(coll.name, { vector: v, limit: 10, ...opts });

async function searchAndQuery() {
  for (let i = 0; i < 10; i++) {
    const q = R.vec();
    const params = i % 2 ? { exact: true } : undefined;
    checkRanking(`query #${i}`, cos, await query(cos, q, { params }), q);
    checkRanking(`search #${i}`, cos, await search(cos, q, { params }), q);
  }
  const q = R.vec();
  checkRanking('query limit 5 offset 5', cos, await query(cos, q, { limit: 5, offset: 5 }), q, { limit: 5, offset: 5 });
  checkRanking('search limit 5 offset 5', cos, await search(cos, q, { limit: 5, offset: 5 }), q, { limit: 5, offset: 5 });
  checkRanking('search hnsw_ef', cos, await search(cos, q, { limit: 20, params: { hnsw_ef: 128 } }), q, { limit: 20 });
  const rk = cos.ranked(q, [...cos.vecs.keys()]);
  const thr = (rk[6][1] + rk[7][1]) / 2; // halfway between two scores: no rounding decides it
  checkRanking('search score_threshold', cos, await search(cos, q, { limit: 20, score_threshold: thr }), q, { limit: 20, threshold: thr });
  checkRanking('query score_threshold', cos, await query(cos, q, { limit: 20, score_threshold: thr }), q, { limit: 20, threshold: thr });
  for (const got of [await search(cos, q, { limit: 3, with_payload: true, with_vector: true }),
    await query(cos, q, { limit: 3, with_payload: true, with_vector: true })]) {
    for (const g of got) {
      check(deepEqual(g.payload, cos.payloads.get(g.id)), `with_payload: id ${g.id} payload ${J(g.payload)}, stored ${J(cos.payloads.get(g.id))}`);
      const sv = cos.vecs.get(g.id);
      check(Array.isArray(g.vector) && g.vector.every((x, i) => Math.abs(x - sv[i]) < 1e-5),
        `with_vector: id ${g.id} vector differs from the stored (normalised for Cosine) one`);
    }
  }
  for (const g of await search(cos, q, { limit: 3, with_payload: ['city'] })) {
    check(deepEqual(g.payload, { city: cos.payloads.get(g.id).city }), `with_payload ['city']: id ${g.id} payload ${J(g.payload)}`);
  }
  for (const g of await search(cos, q, { limit: 3, with_payload: false })) {
    check(!g.payload || Object.keys(g.payload).length === 0, `with_payload false: payload ${J(g.payload)}`);
  }
}

async function filtered() {
  for (const [j, filter] of filters().entries()) {
    for (const params of [undefined, { exact: true }]) {
      const q = R.vec();
      checkRanking(`filtered query #${j} params=${J(params)}`, cos, await query(cos, q, { filter, params }), q, { filter });
      checkRanking(`filtered search #${j} params=${J(params)}`, cos, await search(cos, q, { filter, params }), q, { filter });
    }
  }
}

async function indexesAndBatches() {
  for (const [field_name, field_schema] of [['city', 'keyword'], ['year', 'integer']]) {
    const r = await client.createPayloadIndex(cos.name, { field_name, field_schema, wait: true });
    check(r.status === 'completed', `createPayloadIndex(${field_name}): ${J(r)}`);
  }
  const fs = filters();
  for (const [j, filter] of fs.entries()) {
    const q = R.vec();
    checkRanking(`indexed filtered search #${j}`, cos, await search(cos, q, { filter }), q, { filter });
    const n = (await client.count(cos.name, { filter, exact: true })).count;
    check(n === cos.matching(filter).length, `indexed count filter=${J(filter)}: ${n}, expected ${cos.matching(filter).length}`);
  }
  const qs = fs.slice(0, 4).map(() => R.vec());
  const sb = await client.searchBatch(cos.name, { searches: qs.map((vector, k) => ({ vector, filter: fs[k], limit: 7 })) });
  check(sb.length === qs.length, `searchBatch: ${sb.length} answers for ${qs.length} searches`);
  sb.forEach((g, k) => checkRanking(`search batch [${k}]`, cos, g, qs[k], { filter: fs[k], limit: 7 }));
  const qb = await client.queryBatch(cos.name, { searches: qs.map((query, k) => ({ query, filter: fs[k], limit: 7 })) });
  check(qb.length === qs.length, `queryBatch: ${qb.length} answers for ${qs.length} searches`);
  qb.forEach((g, k) => checkRanking(`query batch [${k}]`, cos, g.points, qs[k], { filter: fs[k], limit: 7 }));
}

async function byId() {
  for (const id of R.sample(ids, 5)) {
    checkRanking(`query by id ${id}`, cos, await query(cos, id), cos.vecs.get(id), { exclude: [id] });
  }
  const filter = { must: [F.value('city', 'Berlin')] };
  const id = ids[100];
  checkRanking(`query by id ${id} + filter`, cos, await query(cos, id, { filter }), cos.vecs.get(id), { filter, exclude: [id] });
  await expectStatus('query by a missing id', 404, () => query(cos, 999_999_999));
}

async function otherMetrics() {
  for (const coll of [l2, dot]) {
    for (let i = 0; i < 5; i++) {
      const q = R.vec(2);
      checkRanking(`search #${i}`, coll, await search(coll, q), q);
      checkRanking(`query #${i}`, coll, await query(coll, q), q);
    }
    const q = R.vec();
    const rk = coll.ranked(q, [...coll.vecs.keys()]);
    const thr = (rk[4][1] + rk[5][1]) / 2;
    checkRanking('search score_threshold', coll, await search(coll, q, { limit: 20, score_threshold: thr }), q, { limit: 20, threshold: thr });
  }
}

async function retrieve() {
  const want = [...R.sample(ids, 30), 4, 999_999_998];
  const got = await client.retrieve(cos.name, { ids: want, with_payload: true, with_vector: true });
  const exp = want.filter((i) => cos.vecs.has(i)).sort((a, b) => a - b);
  check(J(got.map((r) => r.id).sort((a, b) => a - b)) === J(exp), `retrieve ids: got ${J(got.map((r) => r.id))}`);
  for (const r of got) {
    check(deepEqual(r.payload, cos.payloads.get(r.id)), `retrieve ${r.id}: payload ${J(r.payload)}`);
    check(r.vector.every((x, i) => Math.abs(x - cos.vecs.get(r.id)[i]) < 1e-5), `retrieve ${r.id}: vector differs`);
  }
}

async function scrollAll(coll, filter, limit) {
  const out = [];
  let offset;
  for (let page = 0; page < 10_000; page++) {
    const r = await client.scroll(coll.name, { filter, limit, offset, with_payload: true, with_vector: false });
    check(r.points.length <= limit, `scroll page of ${r.points.length} > limit ${limit}`);
    for (const p of r.points) check(deepEqual(p.payload ?? {}, coll.payloads.get(p.id)), `scroll ${p.id}: payload ${J(p.payload)}`);
    out.push(...r.points.map((p) => p.id));
    if (r.next_page_offset == null) return out;
    check(!r.points.length || r.next_page_offset > r.points.at(-1).id, `scroll next_page_offset ${r.next_page_offset} <= last id`);
    offset = r.next_page_offset;
  }
  throw new Mismatch('scroll did not end after 10,000 pages');
}

async function scrollAndCount() {
  for (const filter of [undefined, ...filters()]) {
    const exp = cos.matching(filter).sort((a, b) => a - b);
    const got = await scrollAll(cos, filter, 97);
    check(J(got) === J(exp), `scroll filter=${J(filter ?? null)}: ${got.length} ids, expected ${exp.length}`);
    const n = (await client.count(cos.name, { filter, exact: true })).count;
    check(n === exp.length, `count filter=${J(filter ?? null)}: ${n}, expected ${exp.length}`);
  }
}

async function payloadOps() {
  const [a, b, d, e] = [ids.slice(200, 220), ids.slice(220, 240), ids.slice(240, 260), ids.slice(260, 280)];
  await client.setPayload(cos.name, { payload: { flag: true, city: 'Rome' }, points: a, wait: true });
  a.forEach((p) => cos.payloads.set(p, { ...cos.payloads.get(p), flag: true, city: 'Rome' }));
  await client.overwritePayload(cos.name, { payload: { only: 1 }, points: b, wait: true });
  b.forEach((p) => cos.payloads.set(p, { only: 1 }));
  await client.deletePayload(cos.name, { keys: ['year', 'meta'], points: d, wait: true });
  d.forEach((p) => {
    const { year, meta, ...rest } = cos.payloads.get(p);
    cos.payloads.set(p, rest);
  });
  await client.clearPayload(cos.name, { points: e, wait: true });
  e.forEach((p) => cos.payloads.set(p, {}));
  for (const r of await client.retrieve(cos.name, { ids: [...a, ...b, ...d, ...e], with_payload: true })) {
    check(deepEqual(r.payload ?? {}, cos.payloads.get(r.id)), `after payload updates: id ${r.id} payload ${J(r.payload)}, expected ${J(cos.payloads.get(r.id))}`);
  }
  for (const filter of [{ must: [F.value('flag', true)] }, { must: [F.value('only', 1)] },
    { must: [{ is_empty: { key: 'year' } }] }, { must: [F.value('city', 'Rome')] }]) {
    const n = (await client.count(cos.name, { filter })).count;
    check(n === cos.matching(filter).length, `count after payload updates filter=${J(filter)}: ${n}, expected ${cos.matching(filter).length}`);
    const q = R.vec();
    checkRanking('search after payload updates', cos, await search(cos, q, { filter }), q, { filter });
  }
}

async function deletes() {
  const gone = ids.slice(300, 350);
  const r = await client.delete(cos.name, { wait: true, points: gone });
  check(r.status === 'completed', `delete by ids: ${J(r)}`);
  gone.forEach((p) => cos.del(p));
  check((await client.retrieve(cos.name, { ids: gone })).length === 0, 'delete by ids: retrieve still finds them');
  const filter = { must: [F.value('city', 'Oslo')] };
  await client.delete(cos.name, { wait: true, filter });
  cos.matching(filter).forEach((p) => cos.del(p));
  check((await client.count(cos.name, { filter })).count === 0, 'delete by filter: points still match');
  const total = (await client.count(cos.name, { exact: true })).count;
  check(total === cos.vecs.size, `count after deletes: ${total}, expected ${cos.vecs.size}`);
  check((await client.getCollection(cos.name)).points_count === cos.vecs.size, 'points_count after deletes');
  const q = R.vec();
  checkRanking('search after deletes', cos, await search(cos, q, { limit: 20 }), q, { limit: 20 });
  check(J(await scrollAll(cos, undefined, 500)) === J([...cos.vecs.keys()].sort((x, y) => x - y)), 'scroll after deletes');
}

async function raw(method, p, body, headers = {}) {
  const r = await fetch(URL_ + p, { method, body, headers });
  const text = await r.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch {}
  return { status: r.status, data };
}

async function errors() {
  const anon = new QdrantClient({ url: URL_, checkCompatibility: false });
  await expectStatus('no api-key: getCollections', 401, () => anon.getCollections());
  await expectStatus('no api-key: search', 401, () => anon.search(cos.name, { vector: R.vec() }));
  const wrong = new QdrantClient({ url: URL_, apiKey: `${KEY}x`, checkCompatibility: false });
  await expectStatus('wrong api-key: count', 401, () => wrong.count(cos.name));
  const b = await raw('GET', '/collections', undefined, { Authorization: `Bearer ${KEY}` });
  check(b.status === 200, `GET /collections with 'Authorization: Bearer KEY': HTTP ${b.status}`);
  for (const bad of ['{"vector": [0.1, 0.2', 'not json', '{"vector": "abc"}', '[1,2,3]']) {
    const r = await raw('POST', `/collections/${cos.name}/points/search`, bad, { 'api-key': KEY, 'content-type': 'application/json' });
    check(r.status === 400, `POST /collections/${cos.name}/points/search body ${bad}: HTTP ${r.status}, expected 400`);
    check(r.data?.status?.error, `malformed body ${bad}: not Qdrant's error shape: ${J(r.data).slice(0, 200)}`);
  }
  const uuid = randomUUID();
  await expectStatus('upsert with a UUID id', 400, () => client.upsert(cos.name, { points: [{ id: uuid, vector: R.vec() }] }));
  await expectStatus('retrieve a UUID id', 400, () => client.retrieve(cos.name, { ids: [uuid] }));
  await expectStatus('wrong vector size', 400, () => client.upsert(cos.name, { points: [{ id: 2, vector: R.vec().slice(1) }] }));
  await expectStatus('search a missing collection', 404, () => client.search(`${PREFIX}nope`, { vector: R.vec() }));
  await expectStatus('get a missing collection', 404, () => client.getCollection(`${PREFIX}nope`));
  check((await client.count(cos.name)).count === cos.vecs.size, 'the failed requests changed the collection');
}

async function concurrent() {
  const qs = Array.from({ length: 300 }, () => R.vec());
  const results = await Promise.allSettled(Array.from({ length: 100 }, async (_, t) => {
    const c = new QdrantClient({ url: URL_, apiKey: KEY, timeout: 120_000, checkCompatibility: false });
    for (let k = 0; k < 3; k++) {
      const q = qs[3 * t + k];
      const got = k === 1 ? await c.search(cos.name, { vector: q, limit: 5 }) : (await c.query(cos.name, { query: q, limit: 5 })).points;
      checkRanking(`client ${t} request ${k}`, cos, got, q, { limit: 5 });
    }
  }));
  const bad = results.filter((r) => r.status === 'rejected').map((r) => `${r.reason?.name}: ${r.reason?.message}`);
  check(bad.length === 0, `${bad.length} of 100 concurrent clients failed; first: ${J(bad.slice(0, 3))}`);
}

async function disconnects() {
  const u = new URL(URL_);
  const body = J({ vector: Array(DIM).fill(0.1), limit: 5 });
  const head = `POST /collections/${cos.name}/points/search HTTP/1.1\r\nHost: ${u.host}\r\napi-key: ${KEY}\r\ncontent-type: application/json\r\n`;
  const kinds = [
    `${head}content-length: ${body.length * 4}\r\n\r\n${body.slice(0, body.length / 2)}`,
    `${head}content-length: ${body.length}\r\n\r\n${body}`,
    head.slice(0, head.length / 2),
    `${head}transfer-encoding: chunked\r\n\r\n100\r\n${body.slice(0, 40)}`,
  ];
  for (const [n, data] of kinds.entries()) {
    for (let i = 0; i < 5; i++) {
      await new Promise((resolve, reject) => {
        const s = net.connect({ host: u.hostname, port: Number(u.port) }, () => s.end(data, () => { s.destroy(); resolve(); }));
        s.on('error', reject);
      });
    }
    await new Promise((r) => setTimeout(r, 50));
    check((await client.count(cos.name)).count === cos.vecs.size, `after clients disconnected mid-request (kind ${n}): count is wrong`);
    const q = R.vec();
    checkRanking(`search after disconnects (kind ${n})`, cos, await search(cos, q), q);
  }
}

async function drop() {
  for (const coll of [cos, l2, dot]) {
    check((await client.deleteCollection(coll.name)) === true, `deleteCollection(${coll.name}) did not return true`);
    check((await client.collectionExists(coll.name)).exists === false, `collectionExists(${coll.name}) after delete`);
  }
  const names = (await client.getCollections()).collections.map((c) => c.name);
  check(!names.some((n) => n.startsWith(PREFIX)), `deleted collections still listed: ${J(names)}`);
}

const steps = [
  ['GET / (version the client accepts)', version],
  ['create collections', async () => { for (const c of [cos, l2, dot]) await fresh(c); }],
  [`upsert ${N} points (points list + batch)`, upsert],
  ['collection info / exists / list', info],
  ['search and query by vector vs brute force', searchAndQuery],
  ['search and query with filters vs brute force', filtered],
  ['payload indexes, filtered again; search and query batches', indexesAndBatches],
  ['query by stored id', byId],
  ['Euclid and Dot scores', otherMetrics],
  ['retrieve', retrieve],
  ['scroll pagination and count', scrollAndCount],
  ['set / overwrite / delete / clear payload', payloadOps],
  ['delete points by ids and by filter', deletes],
  ['errors: 401, 400 malformed, 400 UUID, 404', errors],
  ['100 concurrent clients', concurrent],
  ['clients that disconnect mid-request', disconnects],
  ['delete collections', drop],
];

const t0 = performance.now();
console.log(`flow.mjs: @qdrant/js-client-rest ${clientVersion} on node ${process.version} against ${URL_}`);
try {
  for (const [name, fn] of steps) {
    const t = performance.now();
    await fn();
    console.log(`  ok  ${name} (${Math.round(performance.now() - t)} ms)`);
  }
} catch (e) {
  const detail = e instanceof Mismatch ? e.message : `${e.name}: ${e.message}${e.status ? ` (HTTP ${e.status}: ${J(e.data)?.slice(0, 300)})` : ''}\n${e.stack}`;
  console.error(`flow.mjs: FAIL: ${detail}`);
  process.exit(1);
}
console.log(`flow.mjs: PASS (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
