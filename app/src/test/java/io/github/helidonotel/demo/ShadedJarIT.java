package io.github.helidonotel.demo;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.zip.ZipEntry;

import org.junit.jupiter.api.Test;

import static org.hamcrest.MatcherAssert.assertThat;
import static org.hamcrest.Matchers.empty;
import static org.hamcrest.Matchers.greaterThan;
import static org.hamcrest.Matchers.is;
import static org.hamcrest.Matchers.nullValue;

/**
 * The shaded jar keeps every registration of every runtime dependency: each provider listed in a
 * dependency's {@code META-INF/services} file or Helidon's {@code META-INF/helidon/service.loader}
 * is listed in the merged file of the same name. A lost line means a silently missing feature
 * (media support, tracer provider, logging bridge...). And the jar reaches for nothing outside
 * itself.
 */
class ShadedJarIT {
    private static final Path JAR = Path.of(System.getProperty("app.jar", "target/app.jar"));
    private static final Path RUNTIME_CLASSPATH = Path.of(
            System.getProperty("runtime.classpath", "target/runtime-classpath.txt"));

    @Test
    void everyServiceRegistrationOfEveryRuntimeJarIsMerged() throws IOException {
        List<String> jars = List.of(Files.readString(RUNTIME_CLASSPATH).strip().split(File.pathSeparator));
        assertThat(jars.size(), greaterThan(20));
        Set<String> missing = new HashSet<>();
        int checked = 0;
        try (JarFile shaded = new JarFile(JAR.toFile())) {
            for (String jar : jars) {
                try (JarFile dependency = new JarFile(jar)) {
                    for (ZipEntry entry : dependency.stream().toList()) {
                        if (!isRegistry(entry)) {
                            continue;
                        }
                        Set<String> merged = providers(shaded, entry.getName());
                        for (String provider : providers(dependency, entry.getName())) {
                            checked++;
                            if (!merged.contains(provider)) {
                                missing.add(entry.getName() + ": " + provider + " (from " + jar + ")");
                            }
                        }
                    }
                }
            }
        }
        assertThat("registrations checked", checked, greaterThan(20));
        assertThat(missing, is(empty()));
    }

    @Test
    void manifestNamesNoClassPathOutsideTheJar() throws IOException {
        try (JarFile shaded = new JarFile(JAR.toFile())) {
            Attributes manifest = shaded.getManifest().getMainAttributes();
            assertThat(manifest.getValue(Attributes.Name.MAIN_CLASS), is(Main.class.getName()));
            assertThat(manifest.getValue(Attributes.Name.CLASS_PATH), is(nullValue()));
        }
    }

    private static boolean isRegistry(ZipEntry entry) {
        String name = entry.getName();
        return !entry.isDirectory() && (name.startsWith("META-INF/services/")
                || name.equals("META-INF/helidon/service.loader"));
    }

    private static Set<String> providers(JarFile jar, String name) throws IOException {
        ZipEntry entry = jar.getEntry(name);
        Set<String> lines = new HashSet<>();
        if (entry == null) {
            return lines;
        }
        try (InputStream in = jar.getInputStream(entry)) {
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).split("\n")) {
                String provider = line.replaceFirst("#.*", "").strip();
                if (!provider.isEmpty()) {
                    lines.add(provider);
                }
            }
        }
        return lines;
    }
}
