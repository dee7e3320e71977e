package io.github.helidonotel.demo;

import java.util.List;

import io.opentelemetry.common.ComponentLoader;
import io.opentelemetry.sdk.common.export.GrpcSenderProvider;
import io.opentelemetry.sdk.common.export.HttpSenderProvider;

import org.junit.jupiter.api.Test;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.contains;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.hasSize;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.not;

/** The OTLP/HTTP exporter's sender is the JDK's, while OkHttp's stays available to OTLP/gRPC. */
class JdkHttpSenderLoaderTest {
    private final ComponentLoader loader = new JdkHttpSenderLoader();

    @Test
    void offersOnlyTheJdkHttpSenderAlthoughOkHttpsIsOnTheClassPath() {
        ComponentLoader classPath = ComponentLoader.forClassLoader(getClass().getClassLoader());
        assertThat("both senders present", ComponentLoader.loadList(classPath, HttpSenderProvider.class), hasSize(2));

        List<String> offered = ComponentLoader.loadList(loader, HttpSenderProvider.class).stream()
                .map(provider -> provider.getClass().getName())
                .toList();
        assertThat(offered, contains(JdkHttpSenderLoader.JDK_HTTP_SENDER_PROVIDER));
    }

    @Test
    void leavesEveryOtherPlugInAsTheClassPathHasIt() {
        List<GrpcSenderProvider> grpc = ComponentLoader.loadList(loader, GrpcSenderProvider.class);
        assertThat(grpc, is(not(empty())));
        assertThat(grpc.size(), is(ComponentLoader.loadList(
                ComponentLoader.forClassLoader(getClass().getClassLoader()), GrpcSenderProvider.class).size()));
    }
}
