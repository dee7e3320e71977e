package io.github.helidonotel.demo;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.allOf;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.containsInAnyOrder;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.everyItem;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.hasSize;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.lessThanOrEqualTo;
import static org.hamcrest.Matchers.not;

/**
 * The packaged {@code app.jar}, started with {@code java -jar} and nothing else, as separate
 * processes (as the systemd units run it), exporting to a real OTLP receiver in this JVM.
 */
class PackagedJarIT {
    private static final Path JAR = Path.of(System.getProperty("app.jar", "target/app.jar"));
    private static final Duration WAIT = Duration.ofSeconds(30);
    /** Longer than the exporter's retries of one batch (5 attempts, 1 s backoff growing 1.5x, at most 5 s). */
    private static final Duration EXPORT_GIVE_UP = Duration.ofSeconds(30);
    /** level/trace_id/span_id/service/message of a log line in the original's format. */
    private static final Pattern LOG_CONTEXT = Pattern.compile(
            " (\\w+) \\[[^]]+] \\[[^]]+] "
            + "\\[trace_id=(\\w+) span_id=(\\w+) resource.service.name=([\\w-]+) trace_sampled=(True|False)] - (.*)");
    /** The request line and status of an access line (Helidon's access log, "%h %r %s %b %D"). */
    private static final Pattern ACCESS_LINE = Pattern.compile("\\S+ \"(GET \\S+) HTTP/1.1\" (\\d{3}) \\d+ \\d+");

    /** The trace id of a caller's well-formed traceparent in these tests. */
    private static final String CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

    private final List<Process> processes = new ArrayList<>();

    @TempDir
    Path logs;

    @AfterEach
    void stopProcesses() throws InterruptedException {
        for (Process process : processes) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
    }

    /** Status 2 exactly: the unit's RestartPreventExitStatus=2 keeps systemd from restarting it. */
    @Test
    void unknownModeStopsTheServiceWithOneLineNamingTheValidValues() throws Exception {
        Process process = startJar(Map.of("MODE", "jaeger-thrift", "EXPOSE_PORT", "0"), logs.resolve("bad-mode.out"));
        assertThat("exits by itself", process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), is(true));
        assertThat(process.exitValue(), is(2));
        List<String> printed = Files.readAllLines(logs.resolve("bad-mode.out"));
        assertThat(printed, hasSize(1));
        assertThat(printed.getFirst(), containsString("configuration error: invalid MODE='jaeger-thrift': expected "
                                                              + "one of otel-collector-grpc, otel-collector-http, "
                                                              + "jaeger-grpc, jaeger-http, none"));
    }

    @Test
    void anOtelVariableTheServiceDoesNotReadStopsItWithStatus2() throws Exception {
        Path output = logs.resolve("unsupported-otel.out");
        Process process = startJar(Map.of("MODE", "none", "EXPOSE_PORT", "0",
                                          "OTEL_EXPORTER_OTLP_HEADERS", "authorization=secret"), output);
        assertThat("exits by itself", process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), is(true));
        assertThat(process.exitValue(), is(2));
        List<String> printed = Files.readAllLines(output);
        assertThat(printed, hasSize(1));
        assertThat(printed.getFirst(), containsString("configuration error: unsupported OTEL_EXPORTER_OTLP_HEADERS: "
                                                              + "this service reads only the OpenTelemetry variables "));
        assertThat(printed.getFirst(), not(containsString("secret")));
    }

    @Test
    void nonNumericPortStopsTheService() throws Exception {
        Process process = startJar(Map.of("EXPOSE_PORT", "http"), logs.resolve("bad-port.out"));
        assertThat(process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), is(true));
        assertThat(process.exitValue(), is(2));
        List<String> printed = Files.readAllLines(logs.resolve("bad-port.out"));
        assertThat(printed, hasSize(1));
        assertThat(printed.getFirst(), containsString("configuration error: invalid EXPOSE_PORT='http'"));
    }

    /** Settings names the spans' service "app" then, and the log lines must name the same one. */
    @Test
    void anEmptyServiceNameIsAppInLogLinesAsInSpans() throws Exception {
        int port = Instances.freePort();
        Path output = startUntracedWithEmpty("OTEL_SERVICE_NAME", port);
        String startupLine = Files.readAllLines(output).stream()
                .filter(line -> line.contains("listening on port " + port))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no start-up line in " + output));
        assertThat(startupLine, containsString(" resource.service.name=app trace_sampled=False] - app listening on port"));
    }

    @Test
    void chainAcrossThreeJarsLogsTheTraceIdsOfItsExportedSpans() throws Exception {
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.HTTP)) {
            int portA = Instances.freePort();
            int portB = Instances.freePort();
            int portC = Instances.freePort();
            startService("app-b", portB, receiver, Map.of());
            startService("app-c", portC, receiver, Map.of());
            startService("app-a", portA, receiver, Map.of("TARGET_ONE_HOST", "127.0.0.1:" + portB,
                                                          "TARGET_TWO_HOST", "127.0.0.1:" + portC));
            for (int port : List.of(portA, portB, portC)) {
                awaitHealthy(port);
            }

            String traceId = Instances.newTraceId();
            var response = Instances.get(portA, "/chain", "traceparent",
                                         Instances.traceparent(traceId, "339f2b7a83c7d606"));
            assertThat(response.statusCode(), is(200));
            receiver.await(received -> receiver.spansOfTrace(traceId).size() >= 7, WAIT);

            // Each service's log line of its handler carries the ids of that service's server span.
            Map<String, String> handlerLine = Map.of("app-a", "Chain Finished", "app-b", "io task", "app-c", "cpu task");
            Map<String, String> serverSpan = Map.of("app-a", "GET /chain", "app-b", "GET /io_task", "app-c", "GET /cpu_task");
            for (var service : handlerLine.keySet()) {
                Matcher line = logLine(logs.resolve(service + ".log"), handlerLine.get(service), traceId);
                ReceivedSpan span = serverSpan(receiver, traceId, service, serverSpan.get(service));
                assertThat(service + " span_id", line.group(3), is(span.spanId()));
                assertThat(line.group(4), is(service));
                assertThat(line.group(5), is("True"));
            }
            // at the original's levels: logging.error for endpoints, logging.critical for the headers
            assertThat(logLine(logs.resolve("app-a.log"), "Hello World", traceId).group(1), is("ERROR"));
            assertThat(logLine(logs.resolve("app-b.log"), "io task", traceId).group(1), is("ERROR"));
            assertThat(logLine(logs.resolve("app-c.log"), "cpu task", traceId).group(1), is("ERROR"));
            assertThat(logLines(logs.resolve("app-a.log"), traceId).stream()
                               .filter(line -> line.group(6).startsWith("Chain Start, propagating {traceparent=00-"
                                                                              + traceId))
                               .map(line -> line.group(1)).toList(), contains("ERROR"));

            // One access line per request, with the ids of the request's server span.
            Map<String, List<String>> requestsOf = Map.of("app-a", List.of("GET /chain", "GET /"),
                                                          "app-b", List.of("GET /io_task"),
                                                          "app-c", List.of("GET /cpu_task"));
            for (var service : requestsOf.keySet()) {
                List<Matcher> accessLines = logLines(logs.resolve(service + ".log"), traceId).stream()
                        .filter(line -> ACCESS_LINE.matcher(line.group(6)).matches())
                        .toList();
                assertThat(service + " access lines", accessLines, hasSize(requestsOf.get(service).size()));
                for (Matcher line : accessLines) {
                    Matcher access = ACCESS_LINE.matcher(line.group(6));
                    assertThat(access.matches(), is(true));
                    assertThat(access.group(2), is("200"));
                    assertThat(line.group(1), is("INFO"));
                    assertThat(service + " access line of " + access.group(1), line.group(3),
                               is(serverSpan(receiver, traceId, service, access.group(1)).spanId()));
                }
                assertThat(accessLines.stream().map(line -> requestOf(line.group(6))).toList(),
                           containsInAnyOrder(requestsOf.get(service).toArray()));
            }
            // Health checks (awaitHealthy) are logged too, outside any trace.
            List<String> healthLines = Files.readAllLines(logs.resolve("app-b.log")).stream()
                    .filter(line -> line.contains("\"GET /observe/health HTTP/1.1\" 204"))
                    .toList();
            assertThat(healthLines, not(empty()));
            assertThat(healthLines, everyItem(containsString("[trace_id=0 span_id=0 ")));
            String startupLine = Files.readAllLines(logs.resolve("app-a.log")).getFirst();
            assertThat("outside a span", startupLine, containsString("[trace_id=0 span_id=0 resource.service.name=app-a"));
        }
    }

    @Test
    void sigtermLetsRunningRequestsFinishAndExportsTheirSpansBeforeExit() throws Exception {
        try (OtlpReceiver receiver = OtlpReceiver.start(ExportMode.Protocol.GRPC)) {
            int port = Instances.freePort();
            // A long batch delay: the spans can only leave through the flush at shutdown.
            Process process = startService("app-a", port, receiver, Map.of("OTEL_BSP_SCHEDULE_DELAY", "600000"));
            awaitHealthy(port);
            for (int i = 0; i < 5; i++) {
                assertThat(Instances.get(port, "/cpu_task").statusCode(), is(200));
            }
            Thread.sleep(500);
            assertThat("nothing exported before SIGTERM", receiver.spans(), hasSize(0));

            // A request still running when SIGTERM comes (it sleeps 1 s; Helidon's default grace
            // period of 0.5 s would cut it off) is answered, and traced.
            CompletableFuture<Integer> running = CompletableFuture.supplyAsync(() -> statusOf(port, "/io_task"));
            Thread.sleep(200);
            process.destroy();  // SIGTERM, as systemctl stop sends
            assertThat(process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), is(true));
            assertThat("JVM exit status on SIGTERM (the unit's SuccessExitStatus)", process.exitValue(), is(143));
            assertThat(receiver.spans().stream().filter(span -> span.name().equals("GET /cpu_task")).count(), is(5L));
            assertThat("the request in progress at SIGTERM", running.join(), is(200));
            assertThat(receiver.spans().stream().filter(span -> span.name().equals("GET /io_task")).count(), is(1L));
        }
    }

    /** Logback would run on without the file appender, and the log shipper would have nothing to ship. */
    @Test
    void logFileThatCannotBeCreatedStopsTheService() throws Exception {
        Path notADirectory = Files.writeString(logs.resolve("a-file"), "");
        Path logFile = notADirectory.resolve("app.log");
        Process process = startJar(Map.of("MODE", "none", "EXPOSE_PORT", "0", "LOG_FILE", logFile.toString()),
                                   logs.resolve("bad-log-file.out"));
        assertThat("exits by itself", process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), is(true));
        assertThat(process.exitValue(), is(2));
        List<String> printed = Files.readAllLines(logs.resolve("bad-log-file.out"));
        assertThat("one line, not logback's status dump", printed, hasSize(1));
        assertThat(printed.getFirst(), containsString("configuration error: logging did not start as LOG_FILE='"
                                                              + logFile + "'"));
        assertThat(printed.getFirst(), containsString("openFile(" + logFile));
    }

    /** Logback would only warn and rotate at its own default size. */
    @Test
    void unreadableLogFileSizeStopsTheService() throws Exception {
        Process process = startJar(Map.of("MODE", "none", "EXPOSE_PORT", "0",
                                          "LOG_FILE", logs.resolve("app.log").toString(), "LOG_FILE_MAX_SIZE", "lots"),
                                   logs.resolve("bad-log-size.out"));
        assertThat(process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), is(true));
        assertThat(process.exitValue(), is(2));
        assertThat(Files.readString(logs.resolve("bad-log-size.out")),
                   containsString("Failed to set property [maxFileSize] to value \"lots\""));
    }

    @Test
    void emptyLogFileMeansNoFile() throws Exception {
        int port = Instances.freePort();
        Path output = startUntracedWithEmpty("LOG_FILE", port);
        assertThat(Instances.get(port, "/").statusCode(), is(200));
        String printed = Files.readString(output);
        assertThat(printed, containsString("- Hello World"));
        // Had logback tried to open a file named '', the service would have stopped (see above).
        assertThat(printed, containsString("listening on port " + port + ", MODE=none\n"));
    }

    /**
     * Malformed in each way W3C Trace Context names: the request is served in a new trace, and one
     * WARN line in that trace names the value (OpenTelemetry's propagator itself said something
     * about the first form only, without the value and outside any trace). A well-formed one is
     * taken without a word.
     */
    @ParameterizedTest
    @ValueSource(strings = {
            "00-not-a-trace-id-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    })
    void aMalformedTraceparentIsNamedInTheLogInTheNewTrace(String traceparent) throws Exception {
        int port = Instances.freePort();
        Path output = logs.resolve("malformed-traceparent.out");
        startJar(Map.of("MODE", "otel-collector-http", "EXPOSE_PORT", Integer.toString(port),
                        "OTEL_HTTP_ENDPOINT", "http://127.0.0.1:" + Instances.freePort() + "/v1/traces"), output);
        awaitHealthy(port);
        String wellFormed = "00-" + CALLER_TRACE_ID + "-00f067aa0ba902b7-01";
        assertThat(Instances.get(port, "/", "traceparent", wellFormed).statusCode(), is(200));
        assertThat(Instances.get(port, "/", "traceparent", traceparent).statusCode(), is(200));

        List<Matcher> reports = new ArrayList<>();
        for (String line : Files.readAllLines(output, StandardCharsets.UTF_8)) {
            Matcher matcher = LOG_CONTEXT.matcher(line);
            if (line.contains("traceparent") && matcher.find()) {
                reports.add(matcher);
            }
        }
        assertThat(reports, hasSize(1));
        Matcher report = reports.getFirst();
        assertThat(report.group(1), is("WARN"));
        assertThat(report.group(6), is("malformed traceparent '" + traceparent
                                           + "' ignored: the request starts a new trace"));
        String newTrace = report.group(2);
        assertThat(newTrace, allOf(not("0"), not(CALLER_TRACE_ID)));
        assertThat(logLine(output, "Hello World", newTrace).group(5), is("True"));
        assertThat("the well-formed one was continued",
                   logLine(output, "Hello World", CALLER_TRACE_ID).group(5), is("True"));
    }

    /**
     * Printed as written, as the spans have it: logback read {@code %}, {@code )}, backslashes,
     * braces and {@code :-} in a name pasted into its pattern as syntax (see ServiceNameConverter).
     */
    @ParameterizedTest
    @ValueSource(strings = {"app%", "app%level", "shop(eu)", "a${HOME}b", "a\\b", "x:-y", "shop(eu a$b:c/d"})
    void aServiceNameIsPrintedAsWritten(String name) throws Exception {
        int port = Instances.freePort();
        Path output = logs.resolve("name.out");
        startJar(Map.of("MODE", "none", "EXPOSE_PORT", Integer.toString(port), "OTEL_SERVICE_NAME", name), output);
        awaitHealthy(port);
        assertThat(Instances.get(port, "/").statusCode(), is(200));
        String printed = Files.readString(output);
        assertThat(printed, containsString(" resource.service.name=" + name + " trace_sampled=False] - "
                                                   + name + " listening on port " + port));
        assertThat(printed, containsString(" resource.service.name=" + name + " trace_sampled=False] - Hello World\n"));
    }

    /** Both senders: OkHttp's for gRPC, the JDK's for HTTP (see JdkHttpSenderLoader). */
    @ParameterizedTest
    @EnumSource(value = ExportMode.class, names = {"OTEL_COLLECTOR_GRPC", "OTEL_COLLECTOR_HTTP"})
    void keepsServingWhenTheExporterEndpointIsDown(ExportMode mode) throws Exception {
        int port = Instances.freePort();
        int deadPort = Instances.freePort();
        String deadEndpoint = mode.protocol() == ExportMode.Protocol.GRPC
                ? "127.0.0.1:" + deadPort
                : "http://127.0.0.1:" + deadPort + "/v1/traces";
        Path log = logs.resolve("dead-" + mode.value() + ".log");
        startJar(Map.of("EXPOSE_PORT", Integer.toString(port), "MODE", mode.value(),
                        mode.endpointVariable().orElseThrow(), deadEndpoint, "OTEL_SERVICE_NAME", "app-a",
                        "LOG_FILE", log.toString()), logs.resolve("dead-" + mode.value() + ".out"));
        awaitHealthy(port);
        for (int i = 0; i < 20; i++) {
            assertThat(Instances.get(port, "/").statusCode(), is(200));
        }
        // The exporter retries a refused connection with backoff (about 8 s in all) before it
        // gives up on a batch and logs that; the service keeps answering meanwhile.
        long deadline = System.nanoTime() + EXPORT_GIVE_UP.toNanos();
        long exportErrors = 0;
        while (exportErrors == 0 && System.nanoTime() < deadline) {
            assertThat(Instances.get(port, "/").statusCode(), is(200));
            Thread.sleep(500);
            exportErrors = exportFailureLines(log);
        }
        assertThat("export failures are logged", exportErrors > 0, is(true));
        // Without JdkHttpSenderLoader the SDK finds both senders, warns so, and takes either.
        String printed = Files.readString(log);
        assertThat("the SDK had one sender to choose from", printed.contains("Multiple HttpSenderProvider found")
                || printed.contains("Multiple GrpcSenderProvider found"), is(false));
    }

    /**
     * A receiver that refuses every export (400, which the exporter does not retry), one span per
     * export: many failures, few log lines (the SDK throttles its export-failure logging).
     */
    @Test
    void exportFailuresDoNotFloodTheLog() throws Exception {
        AtomicInteger refused = new AtomicInteger();
        HttpServer receiver = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        receiver.createContext("/v1/traces", exchange -> {
            exchange.getRequestBody().readAllBytes();
            exchange.sendResponseHeaders(400, -1);
            exchange.close();
            refused.incrementAndGet();
        });
        receiver.start();
        try {
            int port = Instances.freePort();
            Path log = logs.resolve("refused.log");
            startJar(Map.of("EXPOSE_PORT", Integer.toString(port), "MODE", "otel-collector-http",
                            "OTEL_HTTP_ENDPOINT", "http://127.0.0.1:" + receiver.getAddress().getPort() + "/v1/traces",
                            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "1", "OTEL_BSP_SCHEDULE_DELAY", "10",
                            "LOG_FILE", log.toString()), logs.resolve("refused.out"));
            awaitHealthy(port);
            int requests = 30;
            for (int i = 0; i < requests; i++) {
                assertThat(Instances.get(port, "/").statusCode(), is(200));
            }
            long deadline = System.nanoTime() + WAIT.toNanos();
            while (refused.get() < requests && System.nanoTime() < deadline) {
                Thread.sleep(200);
            }
            assertThat("exports refused", refused.get(), greaterThanOrEqualTo(requests));
            long failureLines = exportFailureLines(log);
            assertThat("lines about " + refused.get() + " refused exports", failureLines,
                       allOf(greaterThanOrEqualTo(1L), lessThanOrEqualTo(10L)));
        } finally {
            receiver.stop(0);
        }
    }

    @Test
    void aPortInUseStopsTheServiceWithAStatusSystemdRestarts() throws Exception {
        try (ServerSocket taken = new ServerSocket(0)) {
            int port = taken.getLocalPort();
            Path output = logs.resolve("port-taken.out");
            Process process = startJar(Map.of("MODE", "none", "EXPOSE_PORT", Integer.toString(port)), output);
            assertThat("exits by itself", process.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), is(true));
            assertThat("Restart=on-failure acts on it; 2 (configuration error) would not be restarted",
                       process.exitValue(), is(1));
            String printed = Files.readString(output);
            assertThat(printed, containsString("the server did not start on port " + port + " (EXPOSE_PORT)"));
            assertThat("no claim that it listens", printed, not(containsString("listening on port")));
        }
    }

    private Process startService(String name, int port, OtlpReceiver receiver, Map<String, String> extra)
            throws IOException {
        ExportMode mode = receiver instanceof GrpcOtlpReceiver ? ExportMode.OTEL_COLLECTOR_GRPC : ExportMode.OTEL_COLLECTOR_HTTP;
        var env = new java.util.HashMap<>(extra);
        env.put("MODE", mode.value());
        env.put(mode.endpointVariable().orElseThrow(), receiver.endpoint());
        env.put("OTEL_SERVICE_NAME", name);
        env.put("EXPOSE_PORT", Integer.toString(port));
        env.put("LOG_FILE", logs.resolve(name + ".log").toString());
        return startJar(env, logs.resolve(name + ".out"));
    }

    /**
     * Starts the jar with MODE=none on {@code port} and {@code variable} set but empty, and waits
     * until it is healthy; returns the file holding its output.
     */
    private Path startUntracedWithEmpty(String variable, int port) throws IOException, InterruptedException {
        Path output = logs.resolve("empty-" + variable + ".out");
        startJar(Map.of("MODE", "none", "EXPOSE_PORT", Integer.toString(port), variable, ""), output);
        awaitHealthy(port);
        return output;
    }

    private Process startJar(Map<String, String> env, Path output) throws IOException {
        String java = ProcessHandle.current().info().command().orElse("java");
        ProcessBuilder builder = new ProcessBuilder(java, "-Xmx128m", "-jar", JAR.toAbsolutePath().toString())
                .redirectErrorStream(true)
                .redirectOutput(output.toFile());
        builder.environment().keySet().removeIf(key -> key.startsWith("OTEL_") || key.equals("MODE")
                || key.endsWith("_ENDPOINT") || key.startsWith("LOG_FILE") || key.equals("EXPOSE_PORT"));
        builder.environment().putAll(env);
        Process process = builder.start();
        processes.add(process);
        return process;
    }

    private static int statusOf(int port, String path) {
        try {
            return Instances.get(port, path).statusCode();
        } catch (IOException | InterruptedException e) {
            throw new CompletionException(e);
        }
    }

    private static void awaitHealthy(int port) throws InterruptedException {
        if (!Instances.awaitHealthy(port, WAIT)) {
            throw new AssertionError("instance on port " + port + " not healthy within " + WAIT);
        }
    }

    /** How many lines of {@code log} report a failed export (the SDK's "Failed to export spans. …"). */
    private static long exportFailureLines(Path log) throws IOException {
        return Files.readAllLines(log).stream().filter(line -> line.contains("Failed to export")).count();
    }

    /** The log line with {@code message} in trace {@code traceId}, parsed. */
    private static Matcher logLine(Path file, String message, String traceId) throws IOException {
        return logLines(file, traceId).stream()
                .filter(line -> line.group(6).equals(message))
                .findFirst()
                .orElseThrow(() -> new AssertionError("no line '" + message + "' of trace " + traceId + " in " + file));
    }

    /** The log lines of trace {@code traceId}, parsed. */
    private static List<Matcher> logLines(Path file, String traceId) throws IOException {
        List<Matcher> lines = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            Matcher matcher = LOG_CONTEXT.matcher(line);
            if (matcher.find() && matcher.group(2).equals(traceId)) {
                lines.add(matcher);
            }
        }
        return lines;
    }

    private static String requestOf(String accessLine) {
        Matcher access = ACCESS_LINE.matcher(accessLine);
        assertThat(accessLine, access.matches(), is(true));
        return access.group(1);
    }

    private static ReceivedSpan serverSpan(OtlpReceiver receiver, String traceId, String service, String name) {
        List<ReceivedSpan> spans = receiver.spansOfTrace(traceId).stream()
                .filter(span -> span.isServer() && span.serviceName().equals(service) && span.name().equals(name))
                .toList();
        assertThat(service + " server spans " + name, spans, hasSize(1));
        return spans.getFirst();
    }
}
