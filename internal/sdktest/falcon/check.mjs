// check.mjs drives postured's CrowdStrike Falcon mock with CrowdStrike's own
// TypeScript SDK, falconjs (npm crowdstrike-falcon), through every endpoint
// postured uses plus the combined listing, and exits non-zero when an answer
// does not parse, lacks a field the SDK's model requires, or parses to values
// other than the ones the mock was given.
//
// Usage: node check.mjs <command that starts the mock> [args...]
// The command (serve/, built by scripts/sdktest) prints one JSON line: the
// mock's URL, credentials, hosts and assessments. It exits when our end of
// its stdin closes, so it cannot outlive this script.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import falcon from "crowdstrike-falcon";

const {
    CloudBasePath,
    Configuration,
    DomainAssessmentsResponseFromJSON,
    FalconClient,
    FalconErrorExplain,
    Oauth2Api,
    ResponseError,
    instanceOfDeviceapiDeviceCombinedResponseSwagger,
    instanceOfDeviceapiDeviceDetailsResponseSwagger,
    instanceOfDeviceapiDevicePaging,
    instanceOfDeviceapiDevicePagingV2,
    instanceOfDeviceapiDeviceResponse,
    instanceOfDeviceapiDeviceSwagger,
    instanceOfDeviceapiMetaInfo,
    instanceOfDeviceapiRequestMeta,
    instanceOfDomainAccessTokenResponseV1,
    instanceOfDomainAssessment,
    instanceOfDomainAssessmentItems,
    instanceOfDomainAssessmentsResponse,
    instanceOfDomainMetaInfo,
    instanceOfDomainSignalProperties,
    instanceOfMsaAPIError,
    instanceOfMsaMetaInfo,
    instanceOfMsaPaging,
    instanceOfMsaQueryResponse,
} = falcon;

if (process.argv.length < 3) {
    console.error("usage: node check.mjs <mock command> [args...]");
    process.exit(2);
}

const mock = spawn(process.argv[2], process.argv.slice(3), { stdio: ["pipe", "pipe", "inherit"] });
const firstLine = createInterface({ input: mock.stdout })[Symbol.asyncIterator]().next();
const started = await Promise.race([firstLine, once(mock, "exit").then(([code]) => ({ exited: code }))]);
if (started.exited !== undefined || started.done) {
    console.error(`falcon check: the mock did not start (exit ${started.exited})`);
    process.exit(1);
}
const fx = JSON.parse(started.value);

// Requests per path, to see the SDK reuse its token.
const calls = new Map();
const falconBase = CloudBasePath("us-1");
// falconjs knows only the real clouds; its fetchApi option is the documented
// hook, used here to send the us-1 requests to the mock instead.
const fetchApi = (url, init) => {
    const u = String(url).replace(falconBase, fx.url);
    const path = new URL(u).pathname;
    calls.set(path, (calls.get(path) || 0) + 1);
    return fetch(u, init);
};
const client = new FalconClient({ cloud: "us-1", clientId: fx.client_id, clientSecret: fx.client_secret, fetchApi });

const failures = [];
async function check(name, fn) {
    try {
        await fn();
        console.log(`ok   ${name}`);
    } catch (err) {
        const detail = err instanceof ResponseError ? `${err.response.status}: ${await FalconErrorExplain(err)}` : err.stack || err;
        failures.push(name);
        console.log(`FAIL ${name}: ${detail}`);
    }
}

function assert(cond, msg) {
    if (!cond) throw new Error(msg);
}

function sameSet(got, want, what) {
    const g = [...new Set(got)].sort();
    const w = [...new Set(want)].sort();
    assert(got.length === g.length, `${what}: duplicates in ${got.length} answers`);
    assert(JSON.stringify(g) === JSON.stringify(w), `${what}: got ${g.length} [${g.slice(0, 5)}...], want ${w.length} [${w.slice(0, 5)}...]`);
}

// envelope checks what every Falcon answer carries.
function envelope(resp, isResponse, isMeta, what) {
    assert(isResponse(resp), `${what}: the SDK's model misses a required field: ${JSON.stringify(resp).slice(0, 300)}`);
    assert(isMeta(resp.meta), `${what}: meta misses a required field: ${JSON.stringify(resp.meta)}`);
    assert(typeof resp.meta.traceId === "string" && resp.meta.traceId !== "", `${what}: no trace_id`);
    for (const e of resp.errors || []) assert(instanceOfMsaAPIError(e), `${what}: malformed error ${JSON.stringify(e)}`);
}

const byID = new Map(fx.hosts.map((h) => [h.device_id, h]));
const assessed = new Map(fx.assessments.map((a) => [a.aid, a]));

// hostFields are the fixture's JSON names and the SDK's camelCase ones.
const hostFields = [
    ["device_id", "deviceId"], ["cid", "cid"], ["hostname", "hostname"], ["serial_number", "serialNumber"],
    ["mac_address", "macAddress"], ["connection_mac_address", "connectionMacAddress"], ["status", "status"],
    ["last_seen", "lastSeen"], ["first_seen", "firstSeen"], ["platform_name", "platformName"],
    ["os_version", "osVersion"], ["agent_version", "agentVersion"], ["product_type_desc", "productTypeDesc"],
    ["reduced_functionality_mode", "reducedFunctionalityMode"], ["machine_domain", "machineDomain"],
    ["filesystem_containment_status", "filesystemContainmentStatus"], ["modified_timestamp", "modifiedTimestamp"],
];

// checkHost compares a parsed host with the fixture; only, for a fields=
// projection, lists the fields that must be there and no others (the
// model's required cid included: the API returns only what was asked).
function checkHost(got, only) {
    assert(only || instanceOfDeviceapiDeviceSwagger(got), `host misses a required field: ${JSON.stringify(got).slice(0, 300)}`);
    const want = byID.get(got.deviceId);
    assert(want, `unknown host ${got.deviceId}`);
    for (const [json, sdk] of hostFields) {
        if (only && !only.includes(json)) {
            assert(got[sdk] === undefined, `host ${want.device_id}: ${json} outside fields= parsed as ${got[sdk]}`);
            continue;
        }
        assert((got[sdk] ?? "") === (want[json] ?? ""), `host ${want.device_id}: ${json} parsed as ${got[sdk]}, want ${want[json]}`);
    }
    if (!only) {
        assert(Array.isArray(got.policies) && got.policies.length === want.policies.length, `host ${want.device_id}: policies`);
        for (const [i, p] of got.policies.entries()) {
            assert(p.policyType === want.policies[i].policy_type && p.applied === want.policies[i].applied, `host ${want.device_id}: policy ${i}`);
        }
        assert(JSON.stringify(got.tags) === JSON.stringify(want.tags), `host ${want.device_id}: tags ${got.tags}`);
    }
}

function checkAssessment(got) {
    assert(instanceOfDomainSignalProperties(got), `assessment misses a required field: ${JSON.stringify(got).slice(0, 300)}`);
    assert(instanceOfDomainAssessment(got.assessment) && instanceOfDomainAssessmentItems(got.assessmentItems), `assessment ${got.aid}: scores or items`);
    const want = assessed.get(got.aid);
    assert(want, `unexpected assessment ${got.aid}`);
    assert(got.assessment.overall === want.assessment.overall && got.assessment.os === want.assessment.os &&
        got.assessment.sensorConfig === want.assessment.sensor_config, `assessment ${got.aid}: scores ${JSON.stringify(got.assessment)}`);
    assert(got.modifiedTime instanceof Date && got.modifiedTime.getTime() === Date.parse(want.modified_time), `assessment ${got.aid}: modified_time ${got.modifiedTime}`);
    assert(got.systemSerialNumber === want.system_serial_number, `assessment ${got.aid}: serial ${got.systemSerialNumber}`);
    assert(got.assessmentItems.osSignals.length === want.assessment_items.os_signals.length, `assessment ${got.aid}: os signals`);
}

// expectError runs fn, which must fail with an HTTP status, and returns
// the ResponseError.
async function expectError(fn, status, what) {
    try {
        await fn();
    } catch (err) {
        assert(err instanceof ResponseError, `${what}: ${err}`);
        assert(err.response.status === status, `${what}: status ${err.response.status}, want ${status}`);
        return err;
    }
    throw new Error(`${what}: succeeded, want status ${status}`);
}

await check("token (201, client credentials)", async () => {
    const api = new Oauth2Api(new Configuration({ basePath: falconBase, fetchApi }));
    const tok = await api.oauth2AccessToken(fx.client_id, fx.client_secret);
    assert(instanceOfDomainAccessTokenResponseV1(tok), `token response: ${JSON.stringify(tok)}`);
    assert(tok.accessToken && tok.tokenType === "bearer" && tok.expiresIn === 1799, `token ${JSON.stringify(tok)}`);
    const err = await expectError(() => api.oauth2AccessToken(fx.client_id, "wrong"), 403, "wrong secret");
    const msg = await FalconErrorExplain(err);
    assert(msg === "access denied, authorization failed", `error body: ${msg}`);
});

const serials = fx.hosts.map((h) => h.serial_number).filter(Boolean).slice(0, 12);
await check("query devices, FQL serial list", async () => {
    const resp = await client.hosts.queryDevicesByFilter(0, 5000, undefined, `serial_number:[${serials.map((s) => `'${s}'`).join(",")}]`);
    envelope(resp, instanceOfMsaQueryResponse, instanceOfMsaMetaInfo, "query");
    assert(instanceOfMsaPaging(resp.meta.pagination), `query pagination ${JSON.stringify(resp.meta.pagination)}`);
    const want = fx.hosts.filter((h) => serials.includes(h.serial_number)).map((h) => h.device_id);
    sameSet(resp.resources, want, "query by serial");
    assert(resp.meta.pagination.total === want.length, `total ${resp.meta.pagination.total}, want ${want.length}`);
});

await check("query devices, FQL hostname and offset paging", async () => {
    const names = fx.hosts.slice(0, 3).map((h) => h.hostname);
    const one = await client.hosts.queryDevicesByFilter(undefined, undefined, undefined, `hostname:[${names.map((n) => `'${n}'`).join(",")}]`);
    sameSet(one.resources, fx.hosts.filter((h) => names.includes(h.hostname)).map((h) => h.device_id), "query by hostname");
    const ids = [];
    for (let offset = 0, total = Infinity; offset < total;) {
        const page = await client.hosts.queryDevicesByFilter(offset, 40);
        envelope(page, instanceOfMsaQueryResponse, instanceOfMsaMetaInfo, "query page");
        assert(instanceOfMsaPaging(page.meta.pagination), "query page pagination");
        assert(page.resources.length > 0, `empty page at offset ${offset}`);
        ids.push(...page.resources);
        ({ offset, total } = page.meta.pagination);
    }
    sameSet(ids, [...byID.keys()], "paged query");
});

await check("host details, GET", async () => {
    const want = fx.hosts.slice(0, 100).map((h) => h.device_id);
    const resp = await client.hosts.getDeviceDetailsV2(want);
    envelope(resp, instanceOfDeviceapiDeviceDetailsResponseSwagger, instanceOfMsaMetaInfo, "details GET");
    sameSet(resp.resources.map((h) => h.deviceId), want, "details GET");
    resp.resources.forEach((h) => checkHost(h));
});

await check("host details, POST", async () => {
    const want = [...byID.keys()];
    const resp = await client.hosts.postDeviceDetailsV2({ ids: want });
    envelope(resp, instanceOfDeviceapiDeviceDetailsResponseSwagger, instanceOfMsaMetaInfo, "details POST");
    sameSet(resp.resources.map((h) => h.deviceId), want, "details POST");
    resp.resources.forEach((h) => checkHost(h));
});

await check("scroll", async () => {
    const ids = [];
    let offset;
    for (let pages = 0; ; pages++) {
        assert(pages < 100, "scroll does not end");
        const page = await client.hosts.queryDevicesByFilterScroll(offset, 30);
        envelope(page, instanceOfDeviceapiDeviceResponse, instanceOfDeviceapiRequestMeta, "scroll page");
        assert(instanceOfDeviceapiDevicePaging(page.meta.pagination), `scroll pagination ${JSON.stringify(page.meta.pagination)}`);
        ids.push(...page.resources);
        offset = page.meta.pagination.offset;
        if (!offset) break;
    }
    sameSet(ids, [...byID.keys()], "scroll");
});

await check("combined devices, full records and fields=", async () => {
    const all = [];
    let offset;
    for (let pages = 0; ; pages++) {
        assert(pages < 100, "combined listing does not end");
        const page = await client.hosts.combinedDevicesByFilter(offset, 50);
        envelope(page, instanceOfDeviceapiDeviceCombinedResponseSwagger, instanceOfDeviceapiMetaInfo, "combined page");
        assert(instanceOfDeviceapiDevicePagingV2(page.meta.pagination), `combined pagination ${JSON.stringify(page.meta.pagination)}`);
        page.resources.forEach((h) => checkHost(h));
        all.push(...page.resources.map((h) => h.deviceId));
        offset = page.meta.pagination.next;
        if (!offset) break;
    }
    sameSet(all, [...byID.keys()], "combined");
    const only = ["device_id", "hostname", "serial_number"];
    const sel = await client.hosts.combinedDevicesByFilter(undefined, 10, undefined, `serial_number:['${serials[0]}']`, only.join(","));
    envelope(sel, instanceOfDeviceapiDeviceCombinedResponseSwagger, instanceOfDeviceapiMetaInfo, "combined fields");
    assert(sel.resources.length > 0, "combined with fields: no host");
    sel.resources.forEach((h) => checkHost(h, only));
});

await check("ZTA assessments, all assessed (200)", async () => {
    const ids = [...assessed.keys()].slice(0, 100);
    const resp = await client.zeroTrustAssessment.getAssessmentV1(ids);
    envelope(resp, instanceOfDomainAssessmentsResponse, instanceOfDomainMetaInfo, "ZTA");
    sameSet(resp.resources.map((a) => a.aid), ids, "ZTA");
    resp.resources.forEach(checkAssessment);
});

await check("ZTA assessments, some unassessed (404 with partial resources)", async () => {
    const missing = [...byID.keys()].filter((id) => !assessed.has(id)).slice(0, 5);
    assert(missing.length > 0, "the fixture has no unassessed host");
    const found = [...assessed.keys()].slice(0, 10);
    // falconjs throws on any non-2xx; a caller reads the body from the
    // error with the SDK's own parser.
    const err = await expectError(() => client.zeroTrustAssessment.getAssessmentV1([...found, ...missing]), 404, "partial ZTA");
    const resp = DomainAssessmentsResponseFromJSON(await err.response.json());
    envelope(resp, instanceOfDomainAssessmentsResponse, instanceOfDomainMetaInfo, "partial ZTA");
    sameSet(resp.resources.map((a) => a.aid), found, "partial ZTA resources");
    resp.resources.forEach(checkAssessment);
    sameSet(resp.errors.map((e) => e.id), missing, "partial ZTA errors");
    assert(resp.errors.every((e) => e.code === 404), "partial ZTA error codes");
});

await check("one token for every call", async () => {
    // The Oauth2Api check above asked twice itself; FalconClient once.
    assert(calls.get("/oauth2/token") === 3, `token requests: ${calls.get("/oauth2/token")}`);
});

mock.stdin.end();
if (failures.length > 0) {
    console.log(`falcon check: ${failures.length} failed: ${failures.join("; ")}`);
    process.exit(1);
}
console.log("falcon check: falconjs parsed every answer");
