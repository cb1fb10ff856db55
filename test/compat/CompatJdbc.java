import java.sql.*;

/** Runs each statement (args after the URL) twice as a server-side prepared statement; prints what it returned. */
public class CompatJdbc {
  public static void main(String[] args) throws Exception {
    try (Connection c = DriverManager.getConnection(args[0])) {
      for (int i = 1; i < args.length; i++) {
        for (int round = 0; round < 2; round++) {
          try (PreparedStatement ps = c.prepareStatement(args[i])) {
            StringBuilder out = new StringBuilder();
            if (ps.execute()) {
              try (ResultSet rs = ps.getResultSet()) {
                int n = rs.getMetaData().getColumnCount();
                while (rs.next()) {
                  for (int k = 1; k <= n; k++) out.append(k > 1 ? "|" : "").append(rs.getString(k));
                  out.append(";");
                }
              }
            } else out.append(ps.getUpdateCount());
            if (round == 1) System.out.println(out);
          } catch (SQLException e) {
            if (round == 1) System.out.println("ERROR " + e.getSQLState() + " " + e.getMessage());
          }
        }
      }
    }
  }
}
