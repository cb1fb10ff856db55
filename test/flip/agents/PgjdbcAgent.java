import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

/**
 * A pgjdbc session kept open across flips (flip-clients.test.ts). Reads commands from stdin and
 * answers one line each: "check" -> side|statement_timeout|application_name|server-prepared,
 * "notifies" -> the payloads received (waits up to 5 s). Errors are answered as "error SQLSTATE message".
 */
public class PgjdbcAgent {
  public static void main(String[] args) throws Exception {
    Connection c = DriverManager.getConnection(args[0]);
    try (Statement s = c.createStatement()) {
      s.execute("SET statement_timeout = '12345ms'");
      s.execute("LISTEN flip_jdbc");
    }
    PreparedStatement ps = c.prepareStatement("SELECT side FROM whoami WHERE ?::int > 0");
    side(ps);
    System.out.println("ready");
    System.out.flush();
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
    String line;
    while ((line = in.readLine()) != null) {
      String cmd = line.trim();
      try {
        if (cmd.equals("check")) {
          String side = side(ps);
          System.out.println(side + "|" + show(c, "statement_timeout") + "|" + show(c, "application_name") + "|"
              + ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare());
        } else if (cmd.equals("notifies")) {
          PGNotification[] n = c.unwrap(PGConnection.class).getNotifications(5000);
          List<String> payloads = new ArrayList<>();
          if (n != null) for (PGNotification x : n) payloads.add(x.getParameter());
          System.out.println("notifies " + String.join(",", payloads));
        } else if (cmd.equals("quit")) {
          break;
        } else {
          System.out.println("error unknown command " + cmd);
        }
      } catch (SQLException e) {
        System.out.println("error " + e.getSQLState() + " " + e.getMessage());
      }
      System.out.flush();
    }
    c.close();
  }

  static String side(PreparedStatement ps) throws SQLException {
    ps.setInt(1, 1);
    try (ResultSet r = ps.executeQuery()) {
      r.next();
      return r.getString(1);
    }
  }

  static String show(Connection c, String name) throws SQLException {
    try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SHOW " + name)) {
      r.next();
      return r.getString(1);
    }
  }
}
