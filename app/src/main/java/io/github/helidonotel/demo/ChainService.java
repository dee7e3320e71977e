package io.github.helidonotel.demo;

import java.net.URI;
import java.util.LinkedHashMap;
import java.util.Map;

import io.helidon.webclient.api.HttpClientResponse;
import io.helidon.webclient.api.WebClient;
import io.helidon.webserver.http.HttpRules;
import io.helidon.webserver.http.HttpService;
import io.helidon.webserver.http.ServerRequest;
import io.helidon.webserver.http.ServerResponse;

import io.opentelemetry.context.Context;
import io.opentelemetry.context.propagation.TextMapPropagator;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code /chain}: calls this instance's {@code /}, then the first target's {@code /io_task}, then
 * the second target's {@code /cpu_task}, in sequence, so one request produces a trace across
 * three services. The WebClient's tracing service ({@link ClientTracing}) creates a CLIENT span
 * per call and injects {@code traceparent}; nothing here propagates by hand.
 */
final class ChainService implements HttpService {
    private static final Logger LOGGER = LoggerFactory.getLogger(ChainService.class);

    private final WebClient client;
    private final TextMapPropagator propagator;
    private final URI targetOne;
    private final URI targetTwo;

    ChainService(WebClient client, TextMapPropagator propagator, URI targetOne, URI targetTwo) {
        this.client = client;
        this.propagator = propagator;
        this.targetOne = targetOne;
        this.targetTwo = targetTwo;
    }

    @Override
    public void routing(HttpRules rules) {
        TracedRoutes.on(rules).get("/chain", this::chain);
    }

    private void chain(ServerRequest req, ServerResponse res) {
        // The original logged the headers it injected, with logging.critical (ERROR here: SLF4J
        // has nothing above it). These carry this server span as the parent; each WebClient call
        // injects the same trace id with its own CLIENT span's id.
        Map<String, String> headers = new LinkedHashMap<>();
        propagator.inject(Context.current(), headers, Map::put);
        LOGGER.error("Chain Start, propagating {}", headers);

        // EXPOSE_PORT, read back from the connection so that an ephemeral port (0) works too
        call(URI.create("http://localhost:" + req.localPeer().port() + "/"));
        call(targetOne.resolve("/io_task"));
        call(targetTwo.resolve("/cpu_task"));

        LOGGER.info("Chain Finished");
        res.send(DemoService.pathBody("/chain"));
    }

    /** One GET; its CLIENT span ({@link ClientTracing}) is a child of this request's span. */
    private void call(URI uri) {
        try (HttpClientResponse response = client.get().uri(uri).request()) {
            LOGGER.debug("{} answered {}", uri, response.status().code());
        }
    }
}
