// Reading journal entries: `sys_journal.raw` is the entry's protobuf message (service protocol
// V5+, `service_protocol.proto`), sent as hex. A tiny protobuf reader pulls out the few fields
// the timeline shows: values, failures, state keys, targets.

export function hexToBytes(hex) {
  const out = new Uint8Array((hex || "").length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

// field number -> list of values (Number for varints, Uint8Array for length-delimited).
export function decode(bytes) {
  const fields = new Map();
  let pos = 0;
  const varint = () => {
    let result = 0, scale = 1, b;
    do {
      if (pos >= bytes.length) throw new Error("truncated varint");
      b = bytes[pos++];
      result += (b & 0x7f) * scale;
      scale *= 128;
    } while (b & 0x80);
    return result;
  };
  while (pos < bytes.length) {
    const tag = varint();
    const field = Math.floor(tag / 8), wire = tag % 8;
    let value;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const len = varint();
      value = bytes.subarray(pos, pos + len);
      pos += len;
    } else if (wire === 1) { value = bytes.subarray(pos, pos + 8); pos += 8; }
    else if (wire === 5) { value = bytes.subarray(pos, pos + 4); pos += 4; }
    else throw new Error(`unsupported wire type ${wire}`);
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field).push(value);
  }
  return fields;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function text(bytes) {
  if (!bytes) return "";
  try {
    return utf8.decode(bytes);
  } catch {
    return "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }
}

function one(fields, n) {
  const v = fields.get(n);
  return v ? v[v.length - 1] : undefined;
}

function valueOf(msgBytes) { // Value { bytes content = 1 }
  return text(one(decode(msgBytes), 1) || new Uint8Array());
}

function failureOf(msgBytes) { // Failure { uint32 code = 1; string message = 2 }
  const f = decode(msgBytes);
  return { code: one(f, 1) || 0, message: text(one(f, 2)) };
}

// What an entry says, in a form the timeline can show:
// { completionId, resultCompletionId, idCompletionId, signal, detail, argument, value, failure, void }
export function describe(row) {
  try {
    return describeEntry(row);
  } catch (e) {
    return { detail: `(cannot read this entry: ${e.message})` };
  }
}

function describeEntry(row) {
  const type = row.entry_type || "";
  const f = decode(hexToBytes(row.raw || ""));
  const out = {};
  if (type.startsWith("Notification: ")) {
    if (f.has(1)) out.completionId = one(f, 1);
    if (f.has(2)) out.signal = String(one(f, 2));
    if (f.has(3)) out.signal = text(one(f, 3));
    if (f.has(4)) out.void = true;
    if (f.has(5)) out.value = valueOf(one(f, 5));
    if (f.has(6)) out.failure = failureOf(one(f, 6));
    if (f.has(16)) out.value = text(one(f, 16));
    if (f.has(17)) out.value = JSON.stringify((decode(one(f, 17)).get(1) || []).map(text));
    return out;
  }
  out.resultCompletionId = one(f, 11);
  switch (type) {
    case "Command: Input":
      if (f.has(14)) out.value = valueOf(one(f, 14));
      break;
    case "Command: Output":
      if (f.has(14)) out.value = valueOf(one(f, 14));
      if (f.has(15)) out.failure = failureOf(one(f, 15));
      break;
    case "Command: GetEagerState":
      out.detail = `get state "${text(one(f, 1))}"`;
      if (f.has(13)) out.void = true;
      if (f.has(14)) out.value = valueOf(one(f, 14));
      break;
    case "Command: GetLazyState":
      out.detail = `get state "${text(one(f, 1))}"`;
      break;
    case "Command: SetState":
      out.detail = `set state "${text(one(f, 1))}"`;
      if (f.has(3)) out.value = valueOf(one(f, 3));
      break;
    case "Command: ClearState":
      out.detail = `clear state "${text(one(f, 1))}"`;
      break;
    case "Command: ClearAllState":
      out.detail = "clear all state";
      break;
    case "Command: GetEagerStateKeys":
    case "Command: GetLazyStateKeys":
      out.detail = "list state keys";
      if (f.has(14)) out.value = JSON.stringify((decode(one(f, 14)).get(1) || []).map(text));
      break;
    case "Command: Sleep":
      out.detail = row.sleep_wakeup_at ? `sleep until ${row.sleep_wakeup_at}` : "sleep";
      break;
    case "Command: Call":
      out.detail = `call ${row.invoked_target || "?"}`;
      out.idCompletionId = one(f, 10);
      if (f.has(3)) out.argument = text(one(f, 3));
      break;
    case "Command: OneWayCall": {
      const at = one(f, 4);
      out.detail = `send to ${row.invoked_target || "?"}` +
        (at ? ` at ${new Date(at).toISOString()}` : "");
      out.idCompletionId = one(f, 10);
      if (f.has(3)) out.argument = text(one(f, 3));
      break;
    }
    case "Command: Run":
      break;
    case "Command: GetPromise":
    case "Command: PeekPromise":
    case "Command: CompletePromise":
      out.detail = `${type.slice(9).replace("Promise", "").toLowerCase()} promise "${row.promise_name || text(one(f, 1))}"`;
      if (f.has(2)) out.value = valueOf(one(f, 2));
      if (f.has(3)) out.failure = failureOf(one(f, 3));
      break;
    case "Command: SendSignal":
      out.detail = `signal ${f.has(3) ? text(one(f, 3)) : one(f, 2)} to ${text(one(f, 1))}`;
      if (f.has(5)) out.value = valueOf(one(f, 5));
      if (f.has(6)) out.failure = failureOf(one(f, 6));
      break;
    case "Command: CompleteAwakeable":
      out.detail = `complete awakeable ${text(one(f, 1))}`;
      if (f.has(2)) out.value = valueOf(one(f, 2));
      if (f.has(3)) out.failure = failureOf(one(f, 3));
      break;
    case "Command: AttachInvocation":
    case "Command: GetInvocationOutput":
      out.detail = `${type === "Command: AttachInvocation" ? "attach to" : "output of"} ${f.has(1) ? text(one(f, 1)) : "a target"}`;
      break;
    default:
      out.detail = type.replace(/^Command: /, "").toLowerCase();
  }
  return out;
}

// Signal ids below 17 are reserved; 1 is the cancel signal. Awakeables use 17 and above.
export function signalLabel(signal) {
  if (signal === "1") return "cancel signal";
  if (/^\d+$/.test(signal)) return `signal ${signal}`;
  return `signal "${signal}"`;
}
