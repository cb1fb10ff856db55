import java.sql.*;
import java.util.*;

/**
 * pgjdbc session used by pgjdbc.test.ts: connects to the JDBC URL in args[0] (prepareThreshold=1,
 * so prepared statements become named server-side statements at once), runs batch inserts, a
 * committed and a rolled-back transaction and a few errors, and prints one "key: value" line per
 * observation for the test to compare.
 */
public class PgjdbcClient {
  static void out(String key, Object value) { System.out.println(key + ": " + value); }

  static String sqlState(Statement st, String sql) {
    try { st.execute(sql); return "no error"; }
    catch (SQLException e) { return e.getSQLState() + " " + e.getMessage().split("\n")[0]; }
  }

  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    try (Connection c = DriverManager.getConnection(args[0], props)) {
      try (Statement st = c.createStatement()) {
        st.execute("CREATE TABLE jdbc_items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2))");
      }

      // batch insert through one prepared statement
      try (PreparedStatement ps = c.prepareStatement("INSERT INTO jdbc_items VALUES (?, ?, ?)")) {
        for (int i = 1; i <= 200; i++) {
          ps.setInt(1, i);
          ps.setString(2, "item " + i);
          ps.setBigDecimal(3, new java.math.BigDecimal(i).movePointLeft(1));
          ps.addBatch();
        }
        int[] counts = ps.executeBatch();
        out("batch", counts.length + " statements, " + Arrays.stream(counts).sum() + " rows");
      }

      // the same prepared query executed repeatedly: a named statement on the server
      try (PreparedStatement ps = c.prepareStatement("SELECT id, name, price FROM jdbc_items WHERE id = ?")) {
        for (int id : new int[] {7, 150, 999, 7}) {
          ps.setInt(1, id);
          try (ResultSet rs = ps.executeQuery()) {
            StringBuilder sb = new StringBuilder();
            while (rs.next()) sb.append(rs.getInt(1)).append('|').append(rs.getString(2)).append('|').append(rs.getBigDecimal(3));
            out("select " + id, sb.length() == 0 ? "(no row)" : sb);
          }
        }
      }
      try (Statement st = c.createStatement();
           ResultSet rs = st.executeQuery("SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE '%jdbc_items%'")) {
        rs.next();
        out("named server-side statements", rs.getInt(1) > 0);
      }

      // a committed transaction and a rolled-back one
      c.setAutoCommit(false);
      try (PreparedStatement ps = c.prepareStatement("UPDATE jdbc_items SET price = price + ? WHERE id <= ?")) {
        ps.setBigDecimal(1, new java.math.BigDecimal("100.00"));
        ps.setInt(2, 10);
        out("updated", ps.executeUpdate());
      }
      c.commit();
      try (Statement st = c.createStatement()) {
        st.executeUpdate("DELETE FROM jdbc_items");
        out("error in transaction", sqlState(st, "INSERT INTO jdbc_items VALUES (1, NULL, 0)"));
        out("aborted transaction", sqlState(st, "SELECT 1"));
      }
      c.rollback();
      c.setAutoCommit(true);

      try (Statement st = c.createStatement()) {
        try (ResultSet rs = st.executeQuery("SELECT count(*), sum(price) FROM jdbc_items")) {
          rs.next();
          out("after rollback", rs.getInt(1) + " rows, total " + rs.getBigDecimal(2));
        }
        out("duplicate key", sqlState(st, "INSERT INTO jdbc_items VALUES (1, 'again', 0)"));
        out("division by zero", sqlState(st, "SELECT 1/0"));
        out("undefined table", sqlState(st, "SELECT * FROM jdbc_nowhere"));
      }

      // an error in a prepared statement keeps the connection usable
      try (PreparedStatement ps = c.prepareStatement("SELECT 10 / ?")) {
        ps.setInt(1, 0);
        try { ps.executeQuery(); out("prepared error", "no error"); }
        catch (SQLException e) { out("prepared error", e.getSQLState()); }
        ps.setInt(1, 5);
        try (ResultSet rs = ps.executeQuery()) { rs.next(); out("prepared after error", rs.getInt(1)); }
      }
      // setQueryTimeout cancels with a CancelRequest carrying the connection's BackendKeyData
      try (Statement st = c.createStatement()) {
        st.setQueryTimeout(1);
        out("query timeout", sqlState(st, "SELECT pg_sleep(30)"));
        st.setQueryTimeout(0);
        try (ResultSet rs = st.executeQuery("SELECT 'usable'")) { rs.next(); out("after cancel", rs.getString(1)); }
      }
      SQLWarning w;
      try (Statement st = c.createStatement()) {
        st.execute("DO $$ BEGIN RAISE NOTICE 'jdbc notice'; END $$");
        w = st.getWarnings();
      }
      out("notice", w == null ? "(none)" : w.getSQLState() + " " + w.getMessage());
    }
  }
}
