package io.github.helidonotel.demo;

import io.helidon.http.HeaderNames;
import io.helidon.http.WritableHeaders;

import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.not;
import static org.hamcrest.Matchers.sameInstance;

/**
 * The cache is static and bounded: the test that fills it runs last, so that the one that needs a
 * name kept still finds room (JUnit's default method order is deterministic but unspecified).
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class HeaderNameCacheTest {

    @Test
    @Order(1)
    void aNameIsMadeOnceAndFindsItsHeaderInAnyCase() {
        assertThat(HeaderNameCache.of("x-cache-test"), sameInstance(HeaderNameCache.of("x-cache-test")));
        assertThat("Helidon's own constant for a name it knows",
                   HeaderNameCache.of("host"), sameInstance(HeaderNames.HOST));
        WritableHeaders<?> headers = WritableHeaders.create().set(HeaderNames.create("Traceparent"), "00-a-b-01");
        assertThat(headers.first(HeaderNameCache.of("traceparent")).orElseThrow(), is("00-a-b-01"));
        assertThat(headers.first(HeaderNameCache.of("TRACEPARENT")).orElseThrow(), is("00-a-b-01"));
    }

    @Test
    @Order(2)
    void namesBeyondTheBoundAreStillRightJustNotKept() {
        for (int i = 0; i < 200; i++) {
            assertThat(HeaderNameCache.of("X-Name-" + i).lowerCase(), is("x-name-" + i));
        }
        assertThat(HeaderNameCache.of("X-Name-199"), is(HeaderNames.create("x-name-199")));
        assertThat("past the bound, each call makes the name anew",
                   HeaderNameCache.of("X-Name-199"), not(sameInstance(HeaderNameCache.of("X-Name-199"))));
    }
}
