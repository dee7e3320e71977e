package io.github.helidonotel.demo;

import java.util.List;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.read.ListAppender;
import io.helidon.http.Status;
import io.helidon.webclient.api.ClientResponseTyped;
import io.helidon.webclient.http1.Http1Client;
import io.helidon.webserver.http.HttpRouting;
import io.helidon.webserver.testing.junit5.ServerTest;
import io.helidon.webserver.testing.junit5.SetUpRoute;

import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.everyItem;
import static org.hamcrest.Matchers.is;

/** The original app's endpoints, responses and status codes, on a real server (Helidon's @ServerTest). */
@ServerTest
class EndpointsTest {
    private final Http1Client client;

    EndpointsTest(Http1Client client) {
        this.client = client;
    }

    @SetUpRoute
    static void routing(HttpRouting.Builder routing) {
        routing.register(new DemoService());
    }

    @Test
    void root() {
        assertThat(get("/").entity(), is("{\"Hello\":\"World\"}"));
    }

    @Test
    void itemsWithAndWithoutQuery() {
        assertThat(client.get("/items/42").queryParam("q", "abc").request(String.class).entity(),
                   is("{\"item_id\":42,\"q\":\"abc\"}"));
        assertThat(get("/items/42").entity(), is("{\"item_id\":42,\"q\":null}"));
        assertThat("a repeated q: the last, as FastAPI takes it",
                   client.get("/items/42").queryParam("q", "first", "last").request(String.class).entity(), is("{\"item_id\":42,\"q\":\"last\"}"));
    }

    @Test
    void itemIdsAreNotLimitedToJavasInt() {
        assertThat(get("/items/2147483648").entity(), is("{\"item_id\":2147483648,\"q\":null}"));
    }

    @Test
    void nonIntegerItemIdIs422NamingTheParameter() {
        ClientResponseTyped<String> response = get("/items/abc");
        assertThat(response.status().code(), is(422));
        assertThat(response.entity(), containsString("\"item_id\""));
        assertThat(response.entity(), containsString("not a valid integer"));
    }

    @Test
    void ioAndCpuTasksAnswerLikeTheOriginal() {
        assertThat(get("/io_task").entity(), is("\"IO bound task finish!\""));
        assertThat(get("/cpu_task").entity(), is("\"CPU bound task finish!\""));
    }

    @Test
    void randomSleepAnswersWithItsPath() {  // after 0-5 s
        ClientResponseTyped<String> response = get("/random_sleep");
        assertThat(response.status().code(), is(200));
        assertThat(response.entity(), is("{\"path\":\"/random_sleep\"}"));
    }

    @RepeatedTest(10)
    void randomStatusIsOneOfTheOriginalSet() {
        ClientResponseTyped<String> response = get("/random_status");
        assertThat(List.of(200, 300, 400, 500).contains(response.status().code()), is(true));
        assertThat(response.entity(), is("{\"path\":\"/random_status\"}"));
    }

    @Test
    void errorTestIs500() {
        assertThat(get("/error_test").status(), is(Status.INTERNAL_SERVER_ERROR_500));
    }

    /** The original logged each endpoint's message with logging.error. */
    @Test
    void everyEndpointLogsItsMessageAtErrorAsTheOriginal() {
        Logger logger = (Logger) LoggerFactory.getLogger(DemoService.class);
        ListAppender<ILoggingEvent> events = new ListAppender<>();
        events.start();
        logger.addAppender(events);
        try {
            for (String path : List.of("/", "/items/1", "/io_task", "/cpu_task", "/random_status", "/random_sleep",
                                       "/error_test")) {
                get(path);
            }
        } finally {
            logger.detachAppender(events);
        }
        assertThat(events.list.stream().map(ILoggingEvent::getFormattedMessage).toList(),
                   contains("Hello World", "items", "io task", "cpu task", "random status", "random sleep",
                            "got error!!!!"));
        assertThat(events.list.stream().map(ILoggingEvent::getLevel).toList(), everyItem(is(Level.ERROR)));
    }

    private ClientResponseTyped<String> get(String path) {
        return client.get(path).followRedirects(false).request(String.class);
    }
}
