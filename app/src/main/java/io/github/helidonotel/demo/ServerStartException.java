package io.github.helidonotel.demo;

/**
 * The web server did not start, e.g. because its port is taken. Helidon 4.1.2 logs the cause and
 * returns a server that is not running rather than throwing, so without this the service would
 * log that it listens and then exit with status 0, which systemd's Restart=on-failure ignores.
 */
public class ServerStartException extends RuntimeException {
    public ServerStartException(int port) {
        super("the server did not start on port " + port + " (EXPOSE_PORT); the cause is logged above");
    }
}
