package io.github.helidonotel.demo;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.greaterThanOrEqualTo;
import static org.hamcrest.Matchers.is;

/**
 * The packaged jar under a flood of slow requests: more {@code /random_sleep} requests at once
 * than it serves at once ({@code MAX_CONCURRENT_REQUESTS}). Those beyond the limit get a 503
 * without reaching the handler (which sleeps 0 to 5 s and logs "random sleep" once per request it
 * serves), the others a 200; and the instance still answers {@code /} afterwards. How long the
 * refusals took is printed, not judged: any bound would fail on a loaded machine. The limits are set small here, so that the
 * flood stays small (the defaults, 100 requests and 400 connections, differ only in size), and
 * the heap is the unit's. Loopback only; a bounded number of requests, each with a timeout.
 */
class FloodIT {
    private static final Path JAR = Path.of(System.getProperty("app.jar", "target/app.jar"));
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final int MAX_CONCURRENT_REQUESTS = 8;
    private static final int MAX_TCP_CONNECTIONS = 64;
    /**
     * Five times what the instance serves at once. Keep it below {@link #MAX_TCP_CONNECTIONS}: every
     * request of the flood then gets a connection at once, so the requests beyond the limit meet
     * the request limit (503) rather than wait in the kernel's accept queue for a connection.
     */
    private static final int FLOOD = 5 * MAX_CONCURRENT_REQUESTS;
    /** What /random_sleep logs once per request it serves, after its sleep. */
    private static final String SLEEP_LINE = "- random sleep";
    /** Longer than /random_sleep's longest sleep (5 s) with a loaded machine's delays on top. */
    private static final Duration REQUEST_TIMEOUT = Duration.ofSeconds(20);

    private Process process;

    @TempDir
    Path logs;

    @AfterEach
    void stop() throws InterruptedException {
        if (process != null) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void aFloodOfSlowRequestsGets503sBeyondTheLimitAndTheInstanceKeepsServing() throws Exception {
        int port = Instances.freePort();
        process = startJar(port);
        awaitHealthy(port);

        // One connection per request: the JDK client opens a new one for each request in flight.
        HttpClient client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5))
                .build();
        HttpRequest request = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/random_sleep"))
                .timeout(REQUEST_TIMEOUT)
                .build();
        List<CompletableFuture<Answer>> answers = new ArrayList<>();
        long floodStart = System.nanoTime();
        for (int i = 0; i < FLOOD; i++) {
            long start = System.nanoTime();
            answers.add(client.sendAsync(request, HttpResponse.BodyHandlers.discarding())
                                .handle((response, error) -> new Answer(
                                        response == null ? -1 : response.statusCode(),
                                        Duration.ofNanos(System.nanoTime() - start),
                                        error == null ? null : error.toString())));
        }
        CompletableFuture.allOf(answers.toArray(CompletableFuture[]::new))
                .get(REQUEST_TIMEOUT.toSeconds() + 10, TimeUnit.SECONDS);
        Duration floodTime = Duration.ofNanos(System.nanoTime() - floodStart);

        List<Answer> all = answers.stream().map(CompletableFuture::join).toList();
        List<Answer> ok = all.stream().filter(answer -> answer.status() == 200).toList();
        List<Answer> refused = all.stream().filter(answer -> answer.status() == 503).toList();
        List<Answer> other = all.stream().filter(answer -> answer.status() != 200 && answer.status() != 503).toList();
        Duration slowestRefusal = refused.stream().map(Answer::time).max(Duration::compareTo).orElse(Duration.ZERO);
        Duration medianRefusal = refused.isEmpty() ? Duration.ZERO
                : refused.stream().map(Answer::time).sorted().toList().get(refused.size() / 2);
        Duration slowestOk = ok.stream().map(Answer::time).max(Duration::compareTo).orElse(Duration.ZERO);
        System.out.printf("flood of %d concurrent /random_sleep (limit %d requests, %d connections): "
                                  + "%d x 200 (slowest %d ms), %d x 503 (median %d ms, slowest %d ms), %d other %s; %d ms in all%n",
                          FLOOD, MAX_CONCURRENT_REQUESTS, MAX_TCP_CONNECTIONS,
                          ok.size(), slowestOk.toMillis(), refused.size(), medianRefusal.toMillis(), slowestRefusal.toMillis(),
                          other.size(), other.stream().limit(3).toList(), floodTime.toMillis());

        assertThat("every request answered 200 or 503", other, is(empty()));
        assertThat("the instance served as many as its limit", ok.size(),
                   greaterThanOrEqualTo(MAX_CONCURRENT_REQUESTS));
        assertThat("requests beyond the limit were refused", refused.size(), greaterThanOrEqualTo(1));
        assertThat("the handler ran once per 200, never for a refused request", sleepLines(), is((long) ok.size()));
        assertThat("afterwards / answers", Instances.get(port, "/").statusCode(), is(200));
        assertThat("the instance is still running", process.isAlive(), is(true));
    }

    private long sleepLines() throws IOException {
        try (var lines = Files.lines(logs.resolve("flood.out"))) {
            return lines.filter(line -> line.contains(SLEEP_LINE)).count();
        }
    }

    private Process startJar(int port) throws IOException {
        String java = ProcessHandle.current().info().command().orElse("java");
        // The unit's heap: a flood must fit in it.
        ProcessBuilder builder = new ProcessBuilder(java, "-Xms64m", "-Xmx64m", "-XX:+ExitOnOutOfMemoryError",
                                                    "-jar", JAR.toAbsolutePath().toString())
                .redirectErrorStream(true)
                .redirectOutput(logs.resolve("flood.out").toFile());
        builder.environment().keySet().removeIf(key -> key.startsWith("OTEL_") || key.equals("MODE")
                || key.endsWith("_ENDPOINT") || key.startsWith("LOG_FILE") || key.startsWith("MAX_"));
        builder.environment().putAll(Map.of("MODE", "none", "EXPOSE_PORT", Integer.toString(port),
                                            "MAX_CONCURRENT_REQUESTS", Integer.toString(MAX_CONCURRENT_REQUESTS),
                                            "MAX_TCP_CONNECTIONS", Integer.toString(MAX_TCP_CONNECTIONS)));
        return builder.start();
    }

    private void awaitHealthy(int port) throws Exception {
        if (!Instances.awaitHealthy(port, WAIT)) {
            throw new AssertionError("instance on port " + port + " not healthy within " + WAIT + ": "
                                             + Files.readString(logs.resolve("flood.out")));
        }
    }

    /** A request's status (-1: no response) and how long it took. */
    private record Answer(int status, Duration time, String error) {
    }
}
