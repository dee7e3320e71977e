package io.github.helidonotel.demo;

import java.net.URI;

/**
 * A callee of {@code /chain}, given as {@code host} or {@code host:port} as in the original demo
 * (whose targets were compose service names on port 8000).
 */
public record HostAndPort(String host, int port) {
    static final int DEFAULT_PORT = 8000;

    /** Parses {@code host} or {@code host:port}; {@code variable} names the source in errors. */
    static HostAndPort parse(String variable, String value) {
        String accepted = "host or host:port, e.g. app-b or 192.168.56.12:8000";
        try {
            URI uri = new URI("http://" + value.strip());
            if (uri.getHost() == null || uri.getPath() == null || !uri.getPath().isEmpty()
                    || uri.getQuery() != null || uri.getRawFragment() != null || uri.getUserInfo() != null
                    || !hasUsablePort(uri)) {
                throw new SettingsException(variable, value, accepted);
            }
            return new HostAndPort(uri.getHost(), uri.getPort() == -1 ? DEFAULT_PORT : uri.getPort());
        } catch (java.net.URISyntaxException e) {
            throw new SettingsException(variable, value, accepted);
        }
    }

    /**
     * Whether {@code uri}'s port, if it names one, can be connected to: "app-b:" parses with no
     * port, and a port of 0 or past 65535 parses at all. Endpoint variables are checked with it too.
     */
    static boolean hasUsablePort(URI uri) {
        String authority = uri.getRawAuthority();
        return authority != null && !authority.endsWith(":") && uri.getPort() != 0 && uri.getPort() <= 65535;
    }

    /** Base URI for requests to this callee. */
    URI baseUri() {
        return URI.create("http://" + host + ":" + port);
    }
}
