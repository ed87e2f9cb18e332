// pgjdbc (Debian's libpostgresql-jdbc-java) against `hspq serve`: DatabaseMetaData, binary
// prepared statements with typed parameters, and setFetchSize paging (Execute with a row limit,
// PortalSuspended) over a whole view.
//
// Usage: java -cp /usr/share/java/postgresql.jar JdbcCheck.java PORT PASSWORD
// Prints one line per check, "name=value", for tests/serve_drivers.rs to compare.

import java.sql.*;
import java.util.*;

public class JdbcCheck {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/hspq"
            // Binary transfer from the first execution, as long-lived BI connections reach it.
            + "?prepareThreshold=1&binaryTransfer=true&sslmode=disable";
        Properties props = new Properties();
        props.setProperty("user", "hspq");
        props.setProperty("password", args[1]);
        try (Connection conn = DriverManager.getConnection(url, props)) {
            DatabaseMetaData meta = conn.getMetaData();
            System.out.println("product=" + meta.getDatabaseProductName());
            List<String> tables = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, "main", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            Collections.sort(tables);
            System.out.println("tables=" + String.join(",", tables));
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = meta.getColumns(null, "main", "billing", "%")) {
                while (rs.next()) columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
            System.out.println("billing_columns=" + String.join(",", columns));
            // Typed parameters, executed more than once so that the binary path is taken.
            try (PreparedStatement ps = conn.prepareStatement(
                    "select count(*) from daily_usage where date >= ? and report_type = ?")) {
                long last = -1;
                for (int i = 0; i < 3; i++) {
                    ps.setDate(1, java.sql.Date.valueOf("2025-06-01"));
                    ps.setString(2, "mssp");
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        last = rs.getLong(1);
                    }
                }
                System.out.println("date_param=" + last);
            }
            try (PreparedStatement ps = conn.prepareStatement(
                    "select sum(billing_value) from billing where year = ?")) {
                long last = -1;
                for (int i = 0; i < 3; i++) {
                    ps.setInt(1, 2025);
                    try (ResultSet rs = ps.executeQuery()) {
                        rs.next();
                        last = rs.getLong(1);
                    }
                }
                System.out.println("int_param=" + last);
            }
            // A whole view through a cursor-like fetch: autocommit off and a fetch size make
            // pgjdbc ask for 1000 rows at a time.
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(1000);
                long rows = 0;
                double sum = 0;
                try (ResultSet rs = st.executeQuery("select * from daily_usage")) {
                    ResultSetMetaData md = rs.getMetaData();
                    while (rs.next()) {
                        rows++;
                        for (int c = 1; c <= md.getColumnCount(); c++) rs.getObject(c);
                    }
                }
                System.out.println("fetched_rows=" + rows);
            }
            conn.commit();
        }
    }
}
