package io.github.helidonotel.demo;

import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;

import io.helidon.webclient.api.WebClient;
import io.helidon.webserver.CloseConnectionException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.everyItem;
import static org.hamcrest.Matchers.hasItem;
import static org.hamcrest.Matchers.hasKey;
import static org.hamcrest.Matchers.hasSize;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.not;
import static io.opentelemetry.proto.trace.v1.Status.StatusCode.STATUS_CODE_ERROR;
import static io.opentelemetry.proto.trace.v1.Status.StatusCode.STATUS_CODE_UNSET;

/**
 * Instances in this JVM export to real OTLP receivers on loopback, over the exporter each MODE
 * selects. Each instance has its own SDK (none is registered globally), as separate VMs would.
 */
class TracingTest {
    private static final Duration WAIT = Duration.ofSeconds(20);
    private static final String CALLER_SPAN_ID = "339f2b7a83c7d606";

    /** Starts an instance with {@code env} on a free port; {@code EXPOSE_PORT} is set here. */
    private static DemoServer start(int port, Map<String, String> env) {
        Map<String, String> all = new HashMap<>(env);
        all.put("EXPOSE_PORT", Integer.toString(port));
        Settings settings = Settings.fromEnvironment(all);
        return DemoServer.start(settings, Telemetry.create(settings, "test"));
    }

    private static Map<String, String> exportingTo(OtlpReceiver receiver, ExportMode mode, String serviceName) {
        String endpoint = receiver.endpoint();
        if (mode == ExportMode.JAEGER_GRPC) {
            endpoint = "http://" + endpoint;  // the URL form, besides the original's host:port
        }
        return Map.of("MODE", mode.value(), mode.endpointVariable().orElseThrow(), endpoint,
                      "OTEL_SERVICE_NAME", serviceName);
    }

    @ParameterizedTest
    @EnumSource(value = ExportMode.class, names = "NONE", mode = EnumSource.Mode.EXCLUDE)
    void everyModeExportsServerSpansWithTheServiceResource(ExportMode mode) throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(mode.protocol());
             DemoServer ignored = start(port, exportingTo(receiver, mode, "app-" + mode.value()))) {
            assertThat(Instances.get(port, "/").statusCode(), is(200));

            List<ReceivedSpan> spans = receiver.await(
                    received -> received.stream().anyMatch(span -> span.name().equals("GET /")), WAIT);
            ReceivedSpan root = spans.stream().filter(span -> span.name().equals("GET /")).findFirst().orElseThrow();
            assertThat(root.isServer(), is(true));
            assertThat(root.serviceName(), is("app-" + mode.value()));
            assertThat(root.resource().get("service.version"), is("test"));
            assertThat(root.resource(), hasKey("host.name"));
            assertThat(root.resource().get("service.instance.id").matches("[0-9a-f-]{36}"), is(true));
        }
    }

    @Test
    void resourceAttributesOfTheEnvironmentArriveWithTheSpans() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.GRPC)) {
            Map<String, String> env = new HashMap<>(exportingTo(receiver, ExportMode.OTEL_COLLECTOR_GRPC, "app-a"));
            env.put("OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment.name=lab, team=a%2Cb%20c ,service.version=2.0,service.name=other");
            try (DemoServer ignored = start(port, env)) {
                assertThat(Instances.get(port, "/").statusCode(), is(200));
            }
            // close() has flushed
            Map<String, String> resource = only(receiver.spans(), span -> span.name().equals("GET /")).resource();
            assertThat(resource.get("deployment.environment.name"), is("lab"));
            assertThat("percent-decoded", resource.get("team"), is("a,b c"));
            assertThat("the user's attributes win over the service's own", resource.get("service.version"), is("2.0"));
            assertThat("OTEL_SERVICE_NAME wins over service.name", resource.get("service.name"), is("app-a"));
            assertThat(resource, hasKey("service.instance.id"));
        }
    }

    @Test
    void chainIsOneTraceAcrossThreeServicesWithClientSpansParentingCalleeServerSpans() throws Exception {
        int portA = Instances.freePort();
        int portB = Instances.freePort();
        int portC = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.GRPC);
             DemoServer b = start(portB, exportingTo(receiver, ExportMode.OTEL_COLLECTOR_GRPC, "app-b"));
             DemoServer c = start(portC, exportingTo(receiver, ExportMode.OTEL_COLLECTOR_GRPC, "app-c"));
             DemoServer a = start(portA, withTargets(exportingTo(receiver, ExportMode.OTEL_COLLECTOR_GRPC, "app-a"),
                                                     portB, portC))) {
            String traceId = Instances.newTraceId();
            var response = Instances.get(portA, "/chain", "traceparent", Instances.traceparent(traceId, CALLER_SPAN_ID));
            assertThat(response.statusCode(), is(200));
            assertThat(response.body(), is("{\"path\":\"/chain\"}"));

            // the original's chain: its server span, three calls, three callee server spans
            receiver.await(received -> receiver.spansOfTrace(traceId).size() >= 7, WAIT);
            List<ReceivedSpan> trace = receiver.spansOfTrace(traceId);
            assertThat(trace, hasSize(7));
            assertThat(trace.stream().map(ReceivedSpan::serviceName).collect(Collectors.toSet()),
                       is(Set.of("app-a", "app-b", "app-c")));

            ReceivedSpan chain = only(trace, span -> span.isServer() && span.name().equals("GET /chain"));
            assertThat("the incoming traceparent is continued", chain.parentSpanId(), is(CALLER_SPAN_ID));

            List<ReceivedSpan> calls = trace.stream().filter(ReceivedSpan::isClient).toList();
            assertThat(calls, hasSize(3));
            assertThat(calls.stream().map(ReceivedSpan::parentSpanId).toList(), everyItem(is(chain.spanId())));
            assertThat(calls.stream().map(ReceivedSpan::serviceName).toList(), everyItem(is("app-a")));

            Map<String, String> calleeOfPath = Map.of("GET /", "app-a", "GET /io_task", "app-b", "GET /cpu_task", "app-c");
            for (ReceivedSpan call : calls) {
                ReceivedSpan callee = only(trace, span -> span.isServer() && span.parentSpanId().equals(call.spanId()));
                assertThat(callee.name() + " runs on", callee.serviceName(), is(calleeOfPath.get(callee.name())));
            }
            assertThat(trace.stream().filter(ReceivedSpan::isServer).map(ReceivedSpan::name).toList(),
                       hasItem("GET /io_task"));
        }
    }

    @Test
    void malformedTraceparentStartsANewTraceAndTheRequestSucceeds() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.HTTP);
             DemoServer ignored = start(port, exportingTo(receiver, ExportMode.OTEL_COLLECTOR_HTTP, "app-a"))) {
            var response = Instances.get(port, "/cpu_task", "traceparent", "00-not-a-trace-id-01");
            assertThat(response.statusCode(), is(200));

            receiver.await(received -> received.stream().anyMatch(span -> span.name().equals("GET /cpu_task")), WAIT);
            ReceivedSpan span = only(receiver.spans(), s -> s.name().equals("GET /cpu_task"));
            assertThat(span.traceId().matches("[0-9a-f]{32}"), is(true));
            assertThat(span.traceId(), not(is("0".repeat(32))));
            assertThat("a new root span", span.parentSpanId(), is(""));
        }
    }

    /**
     * OpenTelemetry's HTTP conventions: a 4xx is the client's error, so it leaves a SERVER span's
     * status unset (only 5xx is ERROR there), while a CLIENT span that got one is ERROR.
     */
    @Test
    void serverSpansAreErrorsFor5xxOnlyAndHealthChecksAreNotTraced() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.HTTP);
             DemoServer ignored = start(port, exportingTo(receiver, ExportMode.JAEGER_HTTP, "app-a"))) {
            assertThat(Instances.get(port, "/observe/health").statusCode() / 100, is(2));
            assertThat(Instances.get(port, "/error_test").statusCode(), is(500));
            assertThat(Instances.get(port, "/items/abc").statusCode(), is(422));
            assertThat(Instances.get(port, "/no_such_route").statusCode(), is(404));

            List<ReceivedSpan> spans = receiver.await(
                    received -> received.stream().filter(ReceivedSpan::isServer).count() >= 3, WAIT);
            ReceivedSpan error = only(spans, span -> span.name().equals("GET /error_test"));
            assertThat(error.status(), is(STATUS_CODE_ERROR));
            assertThat(error.attributes().get("error.type"), is("500"));
            assertThat("the handler's exception, recorded once", error.exceptionTypes(),
                       contains(IllegalStateException.class.getName()));
            ReceivedSpan invalidItem = only(spans, span -> span.name().equals("GET /items/{item_id}"));
            assertThat(invalidItem.attributes().get("http.response.status_code"), is("422"));
            assertThat(invalidItem.status(), is(STATUS_CODE_UNSET));
            ReceivedSpan noRoute = only(spans, span -> "/no_such_route".equals(span.attributes().get("url.path")));
            assertThat("no route to name it after", noRoute.name(), is("GET"));
            assertThat(noRoute.attributes().get("http.response.status_code"), is("404"));
            assertThat(noRoute.status(), is(STATUS_CODE_UNSET));
            // The health check came first and spans are exported in the order they end, so a
            // span of it would be here by now.
            assertThat(spans.stream().map(span -> span.attributes().get("url.path")).toList(),
                       not(hasItem(org.hamcrest.Matchers.startsWith("/observe"))));
            assertThat(spans.stream().filter(ReceivedSpan::isServer).toList(), hasSize(3));
        }
    }

    /**
     * A client that leaves before the answer: writing it fails, Helidon closes the connection, and
     * the span says so instead of claiming the 200 that the response held but never delivered.
     */
    @Test
    void aClientThatLeavesBeforeTheAnswerLeavesAnErrorSpanWithoutAStatus() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.HTTP);
             DemoServer ignored = start(port, exportingTo(receiver, ExportMode.OTEL_COLLECTOR_HTTP, "app-a"))) {
            String traceId = Instances.newTraceId();
            try (Socket socket = new Socket(InetAddress.getLoopbackAddress(), port)) {
                String request = "GET /io_task HTTP/1.1\r\nHost: 127.0.0.1\r\ntraceparent: "
                        + Instances.traceparent(traceId, CALLER_SPAN_ID) + "\r\n\r\n";
                socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
                socket.getOutputStream().flush();
                // /io_task answers after a second; closing with a zero linger resets the
                // connection at once, so that writing the answer fails.
                socket.setSoLinger(true, 0);
            }

            receiver.await(received -> !receiver.spansOfTrace(traceId).isEmpty(), WAIT);
            ReceivedSpan span = only(receiver.spansOfTrace(traceId), ReceivedSpan::isServer);
            assertThat(span.name(), is("GET /io_task"));
            assertThat(span.status(), is(STATUS_CODE_ERROR));
            assertThat(span.attributes(), not(hasKey("http.response.status_code")));
            assertThat("Helidon's exception names the failure", span.attributes().get("error.type"),
                       is(CloseConnectionException.class.getName()));
            assertThat("the failed write, recorded in the handler, then Helidon's closing",
                       span.exceptionTypes(), contains(UncheckedIOException.class.getName(),
                                                       CloseConnectionException.class.getName()));
        }
    }

    @Test
    void clientSpansAreErrorsFor4xxAnd5xx() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.HTTP)) {
            Settings settings = Settings.fromEnvironment(exportingTo(receiver, ExportMode.OTEL_COLLECTOR_HTTP, "caller"));
            try (DemoServer ignored = start(port, Map.of("MODE", "none"));
                 Telemetry caller = Telemetry.create(settings, "test")) {
                WebClient client = WebClient.builder()
                        .servicesDiscoverServices(false)
                        .baseUri("http://127.0.0.1:" + port)
                        .addService(ClientTracing.create(caller.tracing().orElseThrow()))
                        .build();
                for (String path : List.of("/", "/items/abc", "/error_test")) {
                    client.get(path).request().close();
                }
            }
            // close() has flushed
            Map<String, io.opentelemetry.proto.trace.v1.Status.StatusCode> statusOfAnswer = receiver.spans().stream()
                    .filter(ReceivedSpan::isClient)
                    .collect(Collectors.toMap(span -> span.attributes().get("http.response.status_code"),
                                              ReceivedSpan::status));
            assertThat(statusOfAnswer, is(Map.of("200", STATUS_CODE_UNSET, "422", STATUS_CODE_ERROR,
                                                  "500", STATUS_CODE_ERROR)));
        }
    }

    @Test
    void serverSpansAreNamedAfterTheirRouteNotTheRawPath() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.HTTP);
             DemoServer ignored = start(port, exportingTo(receiver, ExportMode.OTEL_COLLECTOR_HTTP, "app-a"))) {
            assertThat(Instances.get(port, "/items/5").statusCode(), is(200));
            assertThat(Instances.get(port, "/items/6?q=x").statusCode(), is(200));

            List<ReceivedSpan> items = receiver.await(
                    received -> received.stream().filter(ReceivedSpan::isServer).count() == 2, WAIT);
            assertThat(items.stream().map(ReceivedSpan::name).toList(),
                       contains("GET /items/{item_id}", "GET /items/{item_id}"));
            assertThat(items.stream().map(span -> span.attributes().get("http.route")).toList(),
                       contains("/items/{item_id}", "/items/{item_id}"));
        }
    }

    @Test
    void modeNoneServesWithoutTracing() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver grpcReceiver = OtlpReceiver.start(ExportMode.Protocol.GRPC);
             OtlpReceiver httpReceiver = OtlpReceiver.start(ExportMode.Protocol.HTTP)) {
            // Every endpoint variable points at a receiver of its protocol, so that a span exported
            // in any mode would arrive: only MODE keeps them away.
            Map<String, String> env = new HashMap<>(Map.of("MODE", "none"));
            for (ExportMode mode : ExportMode.values()) {
                OtlpReceiver receiver = mode.protocol() == ExportMode.Protocol.GRPC ? grpcReceiver : httpReceiver;
                mode.endpointVariable().ifPresent(variable -> env.put(variable, receiver.endpoint()));
            }
            try (DemoServer ignored = start(port, env)) {
                assertThat(Instances.get(port, "/").body(), is("{\"Hello\":\"World\"}"));
            }
            // close() has flushed whatever the instance had recorded
            assertThat(grpcReceiver.spans(), hasSize(0));
            assertThat(httpReceiver.spans(), hasSize(0));
        }
    }

    @Test
    void aZeroRatioSamplerStartsNoTraceButFollowsACallerThatSampled() throws Exception {
        int port = Instances.freePort();
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.HTTP)) {
            Map<String, String> env = new HashMap<>(exportingTo(receiver, ExportMode.OTEL_COLLECTOR_HTTP, "app-a"));
            env.put("OTEL_TRACES_SAMPLER", "parentbased_traceidratio");
            env.put("OTEL_TRACES_SAMPLER_ARG", "0");
            String traceId = Instances.newTraceId();
            try (DemoServer ignored = start(port, env)) {
                assertThat(Instances.get(port, "/cpu_task").statusCode(), is(200));
                var followed = Instances.get(port, "/", "traceparent", Instances.traceparent(traceId, CALLER_SPAN_ID));
                assertThat(followed.statusCode(), is(200));
            }
            // close() has flushed: only the request whose caller had sampled its trace was recorded
            assertThat(receiver.spans().stream().map(ReceivedSpan::name).toList(), contains("GET /"));
            assertThat(receiver.spans().getFirst().traceId(), is(traceId));
        }
    }

    private static Map<String, String> withTargets(Map<String, String> env, int portOne, int portTwo) {
        Map<String, String> all = new HashMap<>(env);
        all.put("TARGET_ONE_HOST", "127.0.0.1:" + portOne);
        all.put("TARGET_TWO_HOST", "127.0.0.1:" + portTwo);
        return all;
    }

    private static ReceivedSpan only(List<ReceivedSpan> spans, java.util.function.Predicate<ReceivedSpan> filter) {
        List<ReceivedSpan> matching = spans.stream().filter(filter).toList();
        assertThat("exactly one matching span in " + spans, matching, hasSize(1));
        return matching.getFirst();
    }
}
