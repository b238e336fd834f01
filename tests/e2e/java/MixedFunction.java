import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.Timestamp;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import org.apache.flink.statefun.sdk.java.Context;
import org.apache.flink.statefun.sdk.java.StatefulFunctionSpec;
import org.apache.flink.statefun.sdk.java.StatefulFunctions;
import org.apache.flink.statefun.sdk.java.TypeName;
import org.apache.flink.statefun.sdk.java.ValueSpec;
import org.apache.flink.statefun.sdk.java.handler.RequestReplyHandler;
import org.apache.flink.statefun.sdk.java.io.KafkaEgressMessage;
import org.apache.flink.statefun.sdk.java.message.Message;
import org.apache.flink.statefun.sdk.java.message.MessageBuilder;
import org.apache.flink.statefun.sdk.java.slice.Slice;
import org.apache.flink.statefun.sdk.java.slice.Slices;
import org.apache.flink.statefun.sdk.java.types.SimpleType;
import org.apache.flink.statefun.sdk.java.types.Type;

/**
 * The Java side of the e2e suite's mixed-language scenario (test_mixed_languages.py): the
 * function {@code e2e.java/mixed}, written with the official Java SDK and served over HTTP by
 * the JDK's own server. Usage: {@code java -cp ... MixedFunction <port>}.
 *
 * <p>Each message it gets, of a built-in type or of the custom types below, is answered to its
 * caller with a value of the same type computed from it (a zero for a zero, but for bool), and
 * written as it read it to a Kafka egress record, with its count of the messages it got so far,
 * kept in its state: a value misread on either side shows in one or the other.
 */
public final class MixedFunction {

  static final TypeName TYPE = TypeName.typeNameFromString("e2e.java/mixed");
  static final TypeName EGRESS = TypeName.typeNameFromString("e2e/out");
  static final String TOPIC_PREFIX = System.getenv().getOrDefault("E2E_TOPIC_PREFIX", "");
  static final ValueSpec<Integer> SEEN = ValueSpec.named("seen").withIntType();

  static final ObjectMapper JSON = new ObjectMapper();
  /** A JSON document: e2e/profile, as statefun_core's make_json_type("e2e/profile") has it. */
  static final Type<ObjectNode> PROFILE =
      SimpleType.simpleImmutableTypeFrom(
          TypeName.typeNameFromString("e2e/profile"),
          JSON::writeValueAsBytes,
          bytes -> (ObjectNode) JSON.readTree(bytes));
  /** As statefun_core's make_protobuf_type(Timestamp) names it. */
  static final Type<Timestamp> TIMESTAMP =
      SimpleType.simpleImmutableTypeFrom(
          TypeName.typeNameFromString("type.googleapis.com/google.protobuf.Timestamp"),
          Timestamp::toByteArray,
          Timestamp::parseFrom);

  static CompletableFuture<Void> apply(Context context, Message message) {
    int seen = context.storage().get(SEEN).orElse(0) + 1;
    context.storage().set(SEEN, seen);
    MessageBuilder reply = MessageBuilder.forAddress(context.caller().orElseThrow());
    String read; // the value as this side read it, for the egress record
    if (message.isInt()) {
      int value = message.asInt();
      read = String.valueOf(value);
      reply.withValue(value / 2);
    } else if (message.isLong()) {
      long value = message.asLong();
      read = String.valueOf(value);
      reply.withValue(value * 2);
    } else if (message.isFloat()) {
      float value = message.asFloat();
      read = String.valueOf(value);
      reply.withValue(value * 2);
    } else if (message.isDouble()) {
      double value = message.asDouble();
      read = String.valueOf(value);
      reply.withValue(value * 3);
    } else if (message.isBoolean()) {
      boolean value = message.asBoolean();
      read = String.valueOf(value);
      reply.withValue(!value);
    } else if (message.isUtf8String()) {
      String value = message.asUtf8String();
      read = value + " (" + value.codePointCount(0, value.length()) + " code points)";
      reply.withValue(value.toUpperCase(Locale.ROOT));
    } else if (message.is(PROFILE)) {
      ObjectNode profile = message.as(PROFILE);
      read = profile.toString();
      ObjectNode answer = JSON.createObjectNode();
      answer.put("name", profile.path("name").asText().toUpperCase(Locale.ROOT));
      ArrayNode tags = answer.putArray("tags");
      profile.path("tags").forEach(tag -> tags.insert(0, tag));
      answer.put("seen", seen);
      reply.withCustomType(PROFILE, answer);
    } else if (message.is(TIMESTAMP)) {
      Timestamp time = message.as(TIMESTAMP);
      read = "seconds=" + time.getSeconds() + " nanos=" + time.getNanos();
      reply.withCustomType(
          TIMESTAMP,
          Timestamp.newBuilder()
              .setSeconds(time.getSeconds() * 2)
              .setNanos(time.getNanos() * 2)
              .build());
    } else {
      throw new IllegalArgumentException("unexpected type " + message.valueTypeName());
    }
    context.send(reply.build());
    context.send(
        KafkaEgressMessage.forEgress(EGRESS)
            .withTopic(TOPIC_PREFIX + "java-seen")
            .withUtf8Key(context.self().id())
            .withUtf8Value(seen + " " + message.valueTypeName().asTypeNameString() + " " + read)
            .build());
    return context.done();
  }

  public static void main(String[] args) throws IOException {
    StatefulFunctions functions = new StatefulFunctions();
    functions.withStatefulFunction(
        StatefulFunctionSpec.builder(TYPE).withValueSpec(SEEN).withSupplier(() -> MixedFunction::apply));
    RequestReplyHandler handler = functions.requestReplyHandler();
    HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", Integer.parseInt(args[0])), 0);
    server.createContext("/statefun", exchange -> serve(handler, exchange));
    server.setExecutor(Executors.newFixedThreadPool(4));
    server.start();
    System.out.println("serving " + TYPE + " on port " + args[0]);
  }

  static void serve(RequestReplyHandler handler, HttpExchange exchange) throws IOException {
    try (exchange) {
      byte[] request;
      try (InputStream body = exchange.getRequestBody()) {
        request = body.readAllBytes();
      }
      byte[] response;
      try {
        Slice reply = handler.handle(Slices.wrap(request)).join();
        response = reply.toByteArray();
      } catch (RuntimeException error) {
        error.printStackTrace();
        exchange.sendResponseHeaders(500, -1);
        return;
      }
      exchange.getResponseHeaders().set("Content-Type", "application/octet-stream");
      exchange.sendResponseHeaders(200, response.length);
      try (OutputStream out = exchange.getResponseBody()) {
        out.write(response);
      }
    }
  }
}
