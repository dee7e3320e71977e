package io.github.helidonotel.demo;

import java.math.BigInteger;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;

import io.helidon.common.media.type.MediaTypes;
import io.helidon.http.Status;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import jakarta.json.JsonObject;
import jakarta.json.spi.JsonProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The endpoints of the original demo app, with its responses and log lines. The original logged
 * every endpoint's message with {@code logging.error}, so they are all ERROR here too (the level
 * is part of what its log pipeline saw, not a judgement on the event). {@code /chain} lives in
 * {@link ChainService} because it is the one endpoint that calls other services.
 */
final class DemoService implements HttpService {
    private static final Logger LOGGER = LoggerFactory.getLogger(DemoService.class);
    // Helidon 4.1 has no constant for 300.
    private static final Status MULTIPLE_CHOICES = Status.create(300, "Multiple Choices");
    /** The original drew from this list, so 200 comes up twice as often as the others. */
    private static final List<Status> RANDOM_STATUSES = List.of(Status.OK_200, Status.OK_200,
            MULTIPLE_CHOICES, Status.BAD_REQUEST_400, Status.INTERNAL_SERVER_ERROR_500);
    private static final int MAX_RANDOM_SLEEP_SECONDS = 5;
    /**
     * Looked up once: each static {@code Json.createObjectBuilder()} call looks the provider up
     * again with a ServiceLoader scan of the class path, which took most of a request's CPU time.
     */
    private static final JsonProvider JSON = JsonProvider.provider();

    @Override
    public void routing(HttpRules rules) {
        TracedRoutes.on(rules)
                .get("/", this::root)
                .get("/items/{item_id}", this::item)
                .get("/io_task", this::ioTask)
                .get("/cpu_task", this::cpuTask)
                .get("/random_status", this::randomStatus)
                .get("/random_sleep", this::randomSleep)
                .get("/error_test", this::errorTest);
    }

    private void root(ServerRequest req, ServerResponse res) {
        LOGGER.error("Hello World");
        res.send(JSON.createObjectBuilder().add("Hello", "World").build());
    }

    private void item(ServerRequest req, ServerResponse res) {
        String rawId = req.path().pathParameters().get("item_id");
        BigInteger itemId;  // FastAPI's int has no upper bound
        try {
            itemId = new BigInteger(rawId);
        } catch (NumberFormatException e) {
            // FastAPI answered a non-integer path parameter with 422 and a detail naming it.
            res.status(Status.UNPROCESSABLE_CONTENT_422).send(JSON.createObjectBuilder()
                    .add("detail", JSON.createArrayBuilder().add(JSON.createObjectBuilder()
                            .add("loc", JSON.createArrayBuilder().add("path").add("item_id"))
                            .add("msg", "value is not a valid integer")
                            .add("input", rawId)))
                    .build());
            return;
        }
        LOGGER.error("items");
        var body = JSON.createObjectBuilder().add("item_id", itemId);
        // A repeated q: the last one, as FastAPI (Starlette's query parameters) takes it.
        List<String> q = req.query().all("q", List::of);
        if (q.isEmpty()) {
            body.addNull("q");
        } else {
            body.add("q", q.getLast());
        }
        res.send(body.build());
    }

    private void ioTask(ServerRequest req, ServerResponse res) throws InterruptedException {
        Thread.sleep(1000);  // a virtual thread: sleeping blocks no carrier thread
        LOGGER.error("io task");
        sendJsonString(res, "IO bound task finish!");
    }

    private void cpuTask(ServerRequest req, ServerResponse res) {
        long sum = 0;
        for (long i = 0; i < 1000; i++) {
            sum += i * i * i;
        }
        LOGGER.error("cpu task");
        LOGGER.debug("cpu task result {}", sum);
        sendJsonString(res, "CPU bound task finish!");
    }

    private void randomStatus(ServerRequest req, ServerResponse res) {
        Status status = RANDOM_STATUSES.get(ThreadLocalRandom.current().nextInt(RANDOM_STATUSES.size()));
        LOGGER.error("random status");
        res.status(status).send(pathBody("/random_status"));
    }

    private void randomSleep(ServerRequest req, ServerResponse res) throws InterruptedException {
        Thread.sleep(ThreadLocalRandom.current().nextInt(MAX_RANDOM_SLEEP_SECONDS + 1) * 1000L);
        LOGGER.error("random sleep");
        res.send(pathBody("/random_sleep"));
    }

    private void errorTest(ServerRequest req, ServerResponse res) {
        LOGGER.error("got error!!!!");
        // Helidon answers it with a 500; TracedRoutes records it on the span.
        throw new IllegalStateException("value error");
    }

    static JsonObject pathBody(String path) {
        return JSON.createObjectBuilder().add("path", path).build();
    }

    /** The original returned bare strings, which FastAPI encodes as a JSON string. */
    private static void sendJsonString(ServerResponse res, String text) {
        res.headers().contentType(MediaTypes.APPLICATION_JSON);
        res.send(JSON.createValue(text).toString());
    }
}
