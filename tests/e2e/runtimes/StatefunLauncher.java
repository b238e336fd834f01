import java.util.HashMap;
import java.util.Map;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.statefun.flink.core.StatefulFunctionsConfig;
import org.apache.flink.statefun.flink.core.StatefulFunctionsJob;
import org.apache.flink.statefun.flink.core.StatefulFunctionsUniverse;
import org.apache.flink.statefun.flink.core.StatefulFunctionsUniverseProvider;
import org.apache.flink.statefun.flink.core.spi.Modules;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Runs a StateFun application in a Flink mini-cluster inside this JVM.
 *
 * <p>Every argument is one {@code key=value} of Flink's and StateFun's configuration, the same
 * keys a cluster's flink-conf.yaml holds; {@code statefun.remote.module-name} names the
 * module.yaml (a file: URL). The released StateFun job does the rest: this class only gives it an
 * environment built from that configuration, which its own main (made for a cluster that already
 * has one) does not.
 */
public final class StatefunLauncher {

  public static void main(String[] args) throws Exception {
    Map<String, String> settings = new HashMap<>();
    for (String arg : args) {
      int equals = arg.indexOf('=');
      if (equals < 1) {
        throw new IllegalArgumentException("expected key=value, got: " + arg);
      }
      settings.put(arg.substring(0, equals), arg.substring(equals + 1));
    }
    Configuration flink = Configuration.fromMap(settings);
    StatefulFunctionsConfig statefun = StatefulFunctionsConfig.fromFlinkConfiguration(flink);
    statefun.setProvider(new ModulesOnClassPath());
    StatefulFunctionsJob.main(StreamExecutionEnvironment.getExecutionEnvironment(flink), statefun);
  }

  /** The modules StateFun finds itself: the remote module named by the configuration. */
  static final class ModulesOnClassPath implements StatefulFunctionsUniverseProvider {
    private static final long serialVersionUID = 1;

    @Override
    public StatefulFunctionsUniverse get(ClassLoader loader, StatefulFunctionsConfig config) {
      return Modules.loadFromClassPath(config).createStatefulFunctionsUniverse();
    }
  }
}
