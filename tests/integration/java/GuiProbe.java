// What a JDBC GUI (DBeaver, DataGrip, SQuirreL) does when it opens a connection and a table, through
// MariaDB Connector/J: connect, walk DatabaseMetaData (catalogs, schemas, tables, columns, keys,
// indexes, foreign keys), open a table (SELECT + ResultSetMetaData) and run a query with parameters.
//
// Usage: java -cp <dir>:mariadb-java-client.jar GuiProbe <jdbc url> <catalog>
// Prints one JSON object per line: {"probe": name, ...}; a failed probe prints {"probe": name, "error": ...,
// "code": vendor code, "state": SQLSTATE} and the program goes on, so the test reports every failure.
// Written without a JSON library: the test machine has only the JDK and the driver jar.

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Timestamp;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;

public final class GuiProbe {
    private GuiProbe() {}

    interface Probe {
        void run(StringBuilder out) throws SQLException;
    }

    static String quote(Object value) {
        if (value == null) {
            return "null";
        }
        if (value instanceof Boolean || value instanceof Integer || value instanceof Long
                || value instanceof Short) {
            return value.toString();
        }
        if (value instanceof byte[]) {
            StringBuilder hex = new StringBuilder("\"0x");
            for (byte b : (byte[]) value) {
                hex.append(String.format("%02x", b & 0xff));
            }
            return hex.append('"').toString();
        }
        String s = value.toString();
        StringBuilder sb = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': sb.append("\\\""); break;
                case '\\': sb.append("\\\\"); break;
                case '\n': sb.append("\\n"); break;
                case '\r': sb.append("\\r"); break;
                case '\t': sb.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        return sb.append('"').toString();
    }

    /** Selected columns of every row, as a JSON array of objects keyed by column label. */
    static String rows(ResultSet rs, String... columns) throws SQLException {
        List<String> out = new ArrayList<>();
        try (rs) {
            while (rs.next()) {
                StringBuilder row = new StringBuilder("{");
                for (int i = 0; i < columns.length; i++) {
                    if (i > 0) {
                        row.append(", ");
                    }
                    row.append(quote(columns[i])).append(": ").append(quote(rs.getObject(columns[i])));
                }
                out.add(row.append('}').toString());
            }
        }
        return "[" + String.join(", ", out) + "]";
    }

    static String metaData(ResultSetMetaData md) throws SQLException {
        List<String> out = new ArrayList<>();
        for (int i = 1; i <= md.getColumnCount(); i++) {
            out.add("{\"label\": " + quote(md.getColumnLabel(i))
                    + ", \"name\": " + quote(md.getColumnName(i))
                    + ", \"table\": " + quote(md.getTableName(i))
                    + ", \"type\": " + md.getColumnType(i)
                    + ", \"type_name\": " + quote(md.getColumnTypeName(i))
                    + ", \"class\": " + quote(md.getColumnClassName(i))
                    + ", \"precision\": " + md.getPrecision(i)
                    + ", \"scale\": " + md.getScale(i)
                    + ", \"nullable\": " + md.isNullable(i)
                    + ", \"auto_increment\": " + md.isAutoIncrement(i)
                    + ", \"signed\": " + md.isSigned(i) + "}");
        }
        return "[" + String.join(", ", out) + "]";
    }

    static String values(ResultSet rs) throws SQLException {
        List<String> out = new ArrayList<>();
        int n = rs.getMetaData().getColumnCount();
        try (rs) {
            while (rs.next()) {
                List<String> row = new ArrayList<>();
                for (int i = 1; i <= n; i++) {
                    row.add(quote(rs.getObject(i)));
                }
                out.add("[" + String.join(", ", row) + "]");
            }
        }
        return "[" + String.join(", ", out) + "]";
    }

    static void probe(String name, Probe body) {
        StringBuilder out = new StringBuilder();
        try {
            body.run(out);
            System.out.println("{\"probe\": " + quote(name) + out + "}");
        } catch (SQLException e) {
            System.out.println("{\"probe\": " + quote(name) + ", \"error\": " + quote(e.getMessage())
                    + ", \"code\": " + e.getErrorCode() + ", \"state\": " + quote(e.getSQLState()) + "}");
        } catch (RuntimeException e) {
            System.out.println("{\"probe\": " + quote(name) + ", \"error\": " + quote(e.toString())
                    + ", \"code\": -1, \"state\": null}");
        }
        System.out.flush();
    }

    static void browse(Connection conn, String catalog, String tag) {
        probe(tag + "product", out -> {
            DatabaseMetaData md = conn.getMetaData();
            out.append(", \"name\": ").append(quote(md.getDatabaseProductName()))
               .append(", \"version\": ").append(quote(md.getDatabaseProductVersion()))
               .append(", \"major\": ").append(md.getDatabaseMajorVersion())
               .append(", \"catalog\": ").append(quote(conn.getCatalog()))
               .append(", \"quote\": ").append(quote(md.getIdentifierQuoteString()));
        });
        probe(tag + "getCatalogs", out -> out.append(", \"rows\": ")
                .append(rows(conn.getMetaData().getCatalogs(), "TABLE_CAT")));
        probe(tag + "getSchemas", out -> out.append(", \"rows\": ")
                .append(rows(conn.getMetaData().getSchemas(), "TABLE_SCHEM", "TABLE_CATALOG")));
        probe(tag + "getTableTypes", out -> out.append(", \"rows\": ")
                .append(rows(conn.getMetaData().getTableTypes(), "TABLE_TYPE")));
        probe(tag + "getTables", out -> out.append(", \"rows\": ").append(rows(
                conn.getMetaData().getTables(catalog, null, "%", new String[] {"TABLE", "VIEW"}),
                "TABLE_CAT", "TABLE_NAME", "TABLE_TYPE")));
        for (String table : new String[] {"gui_customers", "gui_orders", "gui_order_totals"}) {
            probe(tag + "getColumns:" + table, out -> out.append(", \"rows\": ").append(rows(
                    conn.getMetaData().getColumns(catalog, null, table, "%"),
                    "TABLE_NAME", "COLUMN_NAME", "DATA_TYPE", "TYPE_NAME", "COLUMN_SIZE", "DECIMAL_DIGITS",
                    "NULLABLE", "IS_NULLABLE", "COLUMN_DEF", "ORDINAL_POSITION", "IS_AUTOINCREMENT",
                    "IS_GENERATEDCOLUMN")));
        }
        for (String table : new String[] {"gui_customers", "gui_orders"}) {
            probe(tag + "getPrimaryKeys:" + table, out -> out.append(", \"rows\": ").append(rows(
                    conn.getMetaData().getPrimaryKeys(catalog, null, table),
                    "TABLE_NAME", "COLUMN_NAME", "KEY_SEQ", "PK_NAME")));
            probe(tag + "getIndexInfo:" + table, out -> out.append(", \"rows\": ").append(rows(
                    conn.getMetaData().getIndexInfo(catalog, null, table, false, true),
                    "TABLE_NAME", "NON_UNIQUE", "INDEX_NAME", "ORDINAL_POSITION", "COLUMN_NAME")));
            probe(tag + "getImportedKeys:" + table, out -> out.append(", \"rows\": ").append(rows(
                    conn.getMetaData().getImportedKeys(catalog, null, table),
                    "PKTABLE_CAT", "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME", "KEY_SEQ",
                    "UPDATE_RULE", "DELETE_RULE", "FK_NAME", "PK_NAME")));
            probe(tag + "getExportedKeys:" + table, out -> out.append(", \"rows\": ").append(rows(
                    conn.getMetaData().getExportedKeys(catalog, null, table),
                    "PKTABLE_NAME", "PKCOLUMN_NAME", "FKTABLE_NAME", "FKCOLUMN_NAME", "FK_NAME")));
        }
        // Opening a table in the data editor: the GUI reads the rows and the result set's metadata.
        probe(tag + "select", out -> {
            try (Statement st = conn.createStatement()) {
                st.setMaxRows(200);
                ResultSet rs = st.executeQuery("SELECT * FROM gui_customers ORDER BY id");
                out.append(", \"meta\": ").append(metaData(rs.getMetaData()))
                   .append(", \"rows\": ").append(values(rs));
            }
        });
        probe(tag + "select_view", out -> {
            try (Statement st = conn.createStatement()) {
                ResultSet rs = st.executeQuery("SELECT * FROM gui_order_totals ORDER BY email");
                out.append(", \"meta\": ").append(metaData(rs.getMetaData()))
                   .append(", \"rows\": ").append(values(rs));
            }
        });
        // Editing a row and filtering: parameters of every common type.
        probe(tag + "prepared_insert", out -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "INSERT INTO gui_customers (email, name, balance, created, photo) VALUES (?, ?, ?, ?, ?)",
                    Statement.RETURN_GENERATED_KEYS)) {
                ps.setString(1, tag + "new@x.org");
                ps.setString(2, "It's \"new\" \\ Ünïcode 🦫");
                ps.setBigDecimal(3, new BigDecimal("1234.50"));
                ps.setTimestamp(4, Timestamp.valueOf("2024-03-04 05:06:07"));
                ps.setBytes(5, new byte[] {0, (byte) 0xff, 39, 92, 10});
                int n = ps.executeUpdate();
                long id = -1;
                try (ResultSet keys = ps.getGeneratedKeys()) {
                    if (keys.next()) {
                        id = keys.getLong(1);
                    }
                }
                out.append(", \"count\": ").append(n).append(", \"id\": ").append(id);
            }
        });
        probe(tag + "prepared_select", out -> {
            try (PreparedStatement ps = conn.prepareStatement(
                    "SELECT id, email, name, balance, created, photo FROM gui_customers "
                    + "WHERE email LIKE ? AND balance >= ? AND (name = ? OR ? IS NULL) ORDER BY id")) {
                ps.setString(1, tag + "new@%");
                ps.setBigDecimal(2, new BigDecimal("1000"));
                ps.setString(3, "It's \"new\" \\ Ünïcode 🦫");
                ps.setNull(4, Types.VARCHAR);
                ResultSet rs = ps.executeQuery();
                out.append(", \"meta\": ").append(metaData(ps.getMetaData() != null ? ps.getMetaData()
                        : rs.getMetaData())).append(", \"rows\": ").append(values(rs));
            }
        });
        probe(tag + "prepared_update", out -> {
            try (PreparedStatement ps = conn.prepareStatement("UPDATE gui_customers SET balance = balance + ? "
                    + "WHERE email = ?")) {
                ps.setInt(1, 1);
                ps.setString(2, tag + "new@x.org");
                out.append(", \"count\": ").append(ps.executeUpdate());
            }
        });
        probe(tag + "prepared_delete", out -> {
            try (PreparedStatement ps = conn.prepareStatement("DELETE FROM gui_customers WHERE email = ?")) {
                ps.setString(1, tag + "new@x.org");
                out.append(", \"count\": ").append(ps.executeUpdate());
            }
        });
    }

    /** Statements DBeaver's MySQL plugin runs when it opens a connection and a table's editor tabs. */
    static final String[] GUI_SQL = {
        "SHOW ENGINES",
        "SHOW CHARSET",
        "SHOW COLLATION",
        "SELECT @@GLOBAL.character_set_server, @@GLOBAL.collation_server",
        "SHOW VARIABLES LIKE 'lower_case_table_names'",
        "SHOW FULL PROCESSLIST",
        "SHOW GRANTS FOR CURRENT_USER",
        "SHOW FULL TABLES FROM `%1$s`",
        "SHOW TABLE STATUS FROM `%1$s`",
        "SELECT * FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='%1$s' AND TABLE_NAME='gui_customers' "
            + "ORDER BY ORDINAL_POSITION",
        "SELECT * FROM information_schema.STATISTICS WHERE TABLE_SCHEMA='%1$s' AND TABLE_NAME='gui_customers' "
            + "ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        "SELECT kc.CONSTRAINT_NAME, kc.TABLE_NAME, kc.COLUMN_NAME, kc.REFERENCED_TABLE_NAME, "
            + "kc.REFERENCED_COLUMN_NAME, rc.UPDATE_RULE, rc.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE kc "
            + "JOIN information_schema.REFERENTIAL_CONSTRAINTS rc ON rc.CONSTRAINT_SCHEMA = kc.CONSTRAINT_SCHEMA "
            + "AND rc.CONSTRAINT_NAME = kc.CONSTRAINT_NAME WHERE kc.TABLE_SCHEMA='%1$s' "
            + "AND kc.REFERENCED_TABLE_NAME IS NOT NULL ORDER BY kc.CONSTRAINT_NAME, kc.ORDINAL_POSITION",
        "SELECT * FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA='%1$s' ORDER BY TABLE_NAME, "
            + "CONSTRAINT_NAME",
        "SELECT * FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA='%1$s'",
        "SELECT * FROM information_schema.VIEWS WHERE TABLE_SCHEMA='%1$s'",
        "SELECT * FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='%1$s'",
        "SELECT * FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='%1$s'",
        "SHOW CREATE TABLE `%1$s`.`gui_customers`",
        "SHOW CREATE VIEW `%1$s`.`gui_order_totals`",
        "SELECT COUNT(*) FROM `%1$s`.`gui_customers`",
        "SELECT * FROM `%1$s`.`gui_customers` LIMIT 0, 200",
    };

    static void guiSql(Connection conn, String catalog) {
        for (String template : GUI_SQL) {
            String sql = String.format(template, catalog);
            probe("sql:" + template, out -> {
                try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(sql)) {
                    ResultSetMetaData md = rs.getMetaData();
                    List<String> labels = new ArrayList<>();
                    for (int i = 1; i <= md.getColumnCount(); i++) {
                        labels.add(quote(md.getColumnLabel(i)));
                    }
                    out.append(", \"columns\": [").append(String.join(", ", labels)).append("]")
                       .append(", \"rows\": ").append(values(rs));
                }
            });
        }
    }

    public static void main(String[] args) throws Exception {
        System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8));
        String url = args[0];
        String catalog = args[1];
        try (Connection conn = DriverManager.getConnection(url)) {
            browse(conn, catalog, "");
            guiSql(conn, catalog);
        }
        // The same with server-side prepared statements (COM_STMT_PREPARE / EXECUTE, binary rows).
        String sep = url.contains("?") ? "&" : "?";
        try (Connection conn = DriverManager.getConnection(url + sep + "useServerPrepStmts=true")) {
            browse(conn, catalog, "server:");
        }
        System.out.println("{\"probe\": \"done\"}");
    }
}
