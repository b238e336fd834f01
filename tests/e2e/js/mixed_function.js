// The JavaScript side of the e2e suite's mixed-language scenario (test_mixed_languages.py): the
// function e2e.js/mixed, written with the official JavaScript SDK (apache-flink-statefun 3.3.0)
// and served by node's own HTTP server, as the SDK's README shows. Usage: node mixed_function.js <port>
//
// Like java/MixedFunction.java, each message it gets is answered to its caller with a value of
// the same type computed from it, and written as it read it to a Kafka egress record with its
// count of the messages it got so far, kept in its state.
"use strict";
const http = require("http");
const { StateFun, messageBuilder, kafkaEgressMessage } = require("apache-flink-statefun");
const { Timestamp } = require("google-protobuf/google/protobuf/timestamp_pb");

const TOPIC_PREFIX = process.env.E2E_TOPIC_PREFIX || "";

// The SDK has no long and no double type: both declared here, in the protocol's wire format
// (field 1, a fixed64: tag 0x09 and 8 little-endian bytes; nothing for a zero). A long is a
// BigInt: the SDK's generated LongWrapper gives a Number, and reads 2^53 + 1 as 2^53.
function fixed64Type(typename, isZero, write, read) {
  return StateFun.customType(
    typename,
    (value) => {
      const bytes = Buffer.alloc(isZero(value) ? 0 : 9);
      if (bytes.length) {
        bytes[0] = 0x09;
        write(bytes, value);
      }
      return bytes;
    },
    (bytes) => read(bytes),
  );
}
const LONG = fixed64Type(
  "io.statefun.types/long",
  (value) => value === 0n,
  (bytes, value) => bytes.writeBigInt64LE(value, 1),
  (bytes) => (bytes.length ? bytes.readBigInt64LE(1) : 0n),
);
const DOUBLE = fixed64Type(
  "io.statefun.types/double",
  (value) => Object.is(value, 0),
  (bytes, value) => bytes.writeDoubleLE(value, 1),
  (bytes) => (bytes.length ? bytes.readDoubleLE(1) : 0),
);
const PROFILE = StateFun.jsonType("e2e/profile");
const TIMESTAMP = StateFun.protoType("type.googleapis.com/google.protobuf.Timestamp", Timestamp);

// type: how a value of it is shown in the egress record, and the answer computed from it
const KINDS = [
  [StateFun.intType(), String, (value) => Math.trunc(value / 2)],
  [LONG, String, (value) => value * 2n],
  [StateFun.floatType(), String, (value) => value * 2],
  [DOUBLE, String, (value) => value * 3],
  [StateFun.booleanType(), String, (value) => !value],
  [StateFun.stringType(), (value) => `${value} (${[...value].length} code points)`,
    (value) => value.toUpperCase()],
  [PROFILE, JSON.stringify, (value, seen) =>
    ({ name: value.name.toUpperCase(), tags: [...value.tags].reverse(), seen })],
  [TIMESTAMP, (value) => `seconds=${value.getSeconds()} nanos=${value.getNanos()}`,
    (value) => {
      const doubled = new Timestamp();
      doubled.setSeconds(value.getSeconds() * 2);
      doubled.setNanos(value.getNanos() * 2);
      return doubled;
    }],
];

function mixed(context, message) {
  const seen = (context.storage.seen || 0) + 1;
  context.storage.seen = seen;
  const kind = KINDS.find(([type]) => message.is(type));
  if (kind === undefined) {
    throw new Error(`unexpected type ${message.valueTypeName}`);
  }
  const [type, show, answer] = kind;
  const value = message.as(type);
  const caller = context.caller;
  context.send(messageBuilder({
    typename: caller.typename, id: caller.id, value: answer(value, seen), valueType: type,
  }));
  context.send(kafkaEgressMessage({
    typename: "e2e/out",
    topic: `${TOPIC_PREFIX}js-seen`,
    key: context.self.id,
    value: `${seen} ${message.valueTypeName} ${show(value)}`,
  }));
}

const statefun = new StateFun();
statefun.bind({
  typename: "e2e.js/mixed",
  specs: [{ name: "seen", type: StateFun.intType() }],
  fn(context, message) {
    try {
      mixed(context, message);
    } catch (error) {
      console.error(error); // the SDK answers 500 and logs nothing
      throw error;
    }
  },
});
const port = Number(process.argv[2]);
http.createServer(statefun.handler()).listen(port, "127.0.0.1", () => {
  console.log(`serving e2e.js/mixed on port ${port}`);
});
