<?php
// PHP mysqli and PDO scenarios against a Marmot node, driven by tests/integration/test_client_php.py.
//
// Usage: php client.php SCENARIO PORT [UNIX_SOCKET]
// Prints one JSON object: {"checks": N, "failures": [...]}. Every check compares with === (type and
// value), so "1" where MySQL would give int 1 is a failure. Expected values are what MySQL 8.0 returns
// to the same driver call.

declare(strict_types=1);
error_reporting(E_ALL);

$SCENARIO = $argv[1] ?? '';
$PORT = (int)($argv[2] ?? 0);
$SOCKET = $argv[3] ?? '';
$CHECKS = 0;
$FAILURES = [];

function show(mixed $v): string
{
    if (is_string($v)) {
        return '"' . addcslashes($v, "\0..\37\177..\377\\\"") . '"';
    }
    if (is_array($v)) {
        return '[' . implode(', ', array_map('show', $v)) . ']';
    }
    return var_export($v, true);
}

function check(string $label, mixed $got, mixed $want): void
{
    global $CHECKS, $FAILURES;
    $CHECKS++;
    if ($got !== $want) {
        $FAILURES[] = "$label: got " . show($got) . ', want ' . show($want);
    }
}

/** Run $fn and return the exception it throws (or null). */
function raises(callable $fn): ?Throwable
{
    try {
        $fn();
    } catch (Throwable $e) {
        return $e;
    }
    return null;
}

const SAFE = "\x00\x01'\"\\\n\r\x1a";            // valid UTF-8, but every byte an escaper must handle
const RAW = "\x00\xff\xfe\x80\xc3\x28'\\";        // not UTF-8
const DDL = 'CREATE TABLE %s (id INT PRIMARY KEY, s VARCHAR(100), t TEXT, b BLOB, n BIGINT, f DOUBLE, '
    . 'd DECIMAL(12,2), dd DATE, ts DATETIME)';
const COLS = 'id, s, t, b, n, f, d, dd, ts';

// Rows every path can carry; native PHP types as the binary protocol returns them.
const ROWS = [
    [1, "it's", 'say "hi"', SAFE, 9007199254740991, 1.5, '12345.67', '2024-02-29', '2024-01-02 03:04:05'],
    [2, 'back\\slash', '\\n', '', PHP_INT_MAX, -0.1, '-0.05', '1970-01-01', '1999-12-31 23:59:59'],
    [3, 'trail\\', 'é中文🦫', null, 0, 1e300, '1.10', null, null],
    [4, '', null, "\x00\x00", null, null, null, null, null],
];
// The same rows as MySQL's text protocol prints them (mysqli without INT_AND_FLOAT_NATIVE).
const TEXT_ROWS = [
    ['1', "it's", 'say "hi"', SAFE, '9007199254740991', '1.5', '12345.67', '2024-02-29', '2024-01-02 03:04:05'],
    ['2', 'back\\slash', '\\n', '', '9223372036854775807', '-0.1', '-0.05', '1970-01-01', '1999-12-31 23:59:59'],
    ['3', 'trail\\', 'é中文🦫', null, '0', '1e300', '1.10', null, null],
    ['4', '', null, "\x00\x00", null, null, null, null, null],
];
// More rows for the prepared paths: the text path cannot carry PHP_INT_MIN yet (xfail'd scenarios).
const EXTRA_ROWS = [
    [11, "it's \"q\" back\\slash \\n trail\\", 'é中文🦫', RAW, PHP_INT_MIN, -0.1, '-0.05', '2024-02-29',
        '2024-01-02 03:04:05'],
    [12, "\\'", '', SAFE, PHP_INT_MAX, 1e300, '12345.67', '1000-01-01', '9999-12-31 23:59:59'],
    [13, null, null, null, null, null, null, null, null],
];

function mysqli_connect_test(): mysqli
{
    global $PORT;
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    $m = new mysqli('127.0.0.1', 'root', '', 'marmot', $PORT);
    $m->set_charset('utf8mb4');
    return $m;
}

function pdo_connect_test(bool $emulate): PDO
{
    global $PORT;
    return new PDO("mysql:host=127.0.0.1;port=$PORT;dbname=marmot;charset=utf8mb4", 'root', '', [
        PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        PDO::ATTR_EMULATE_PREPARES => $emulate,
        PDO::ATTR_STRINGIFY_FETCHES => false,
    ]);
}

function fresh_table(mysqli|PDO $c, string $name, string $ddl = DDL): void
{
    $c->query("DROP TABLE IF EXISTS $name");
    $c->query(sprintf($ddl, $name));
}

function sql_literal(mysqli $m, mixed $v): string
{
    if ($v === null) {
        return 'NULL';
    }
    if (is_int($v) || is_float($v)) {
        return var_export($v, true);  // shortest round-trip form, e.g. -0.1 and 1.0E+300
    }
    return "'" . $m->real_escape_string($v) . "'";
}

function insert_text(mysqli $m, string $table, array $rows): void
{
    foreach ($rows as $row) {
        $m->query("INSERT INTO $table (" . COLS . ') VALUES (' . implode(', ', array_map(
            fn($v) => sql_literal($m, $v), $row)) . ')');
        check("insert row {$row[0]} affected_rows", $m->affected_rows, 1);
    }
}

// ------------------------------------------------------------------------------------------ mysqli

function scenario_mysqli_text(): void
{
    $m = mysqli_connect_test();
    fresh_table($m, 'php_text');
    insert_text($m, 'php_text', ROWS);
    $got = $m->query('SELECT ' . COLS . ' FROM php_text ORDER BY id')->fetch_all(MYSQLI_NUM);
    check('text rows', $got, TEXT_ROWS);
    foreach (ROWS as $row) {
        $r = $m->query("SELECT id FROM php_text WHERE s = '" . $m->real_escape_string($row[1]) . "'");
        check("lookup by s of row {$row[0]}", $r->fetch_all(), [[(string)$row[0]]]);
    }
    $assoc = $m->query("SELECT id, t AS `é 🦫` FROM php_text WHERE id = 3")->fetch_assoc();
    check('unicode column alias', $assoc, ['id' => '3', 'é 🦫' => 'é中文🦫']);
    // With MYSQLI_OPT_INT_AND_FLOAT_NATIVE the driver converts by column type: proves the metadata.
    $native = mysqli_init();
    $native->options(MYSQLI_OPT_INT_AND_FLOAT_NATIVE, 1);
    global $PORT;
    $native->real_connect('127.0.0.1', 'root', '', 'marmot', $PORT);
    $native->set_charset('utf8mb4');
    $got = $native->query('SELECT ' . COLS . ' FROM php_text ORDER BY id')->fetch_all(MYSQLI_NUM);
    check('text rows, native ints and floats', $got, ROWS);
    $native->close();
    $m->close();
}

function scenario_mysqli_text_binary(): void
{
    $m = mysqli_connect_test();
    fresh_table($m, 'php_text_raw', 'CREATE TABLE %s (id INT PRIMARY KEY, b BLOB)');
    $m->query("INSERT INTO php_text_raw VALUES (1, '" . $m->real_escape_string(RAW) . "')");
    check('raw bytes', $m->query('SELECT b FROM php_text_raw')->fetch_row(), [RAW]);
}

function scenario_mysqli_text_min_bigint(): void
{
    $m = mysqli_connect_test();
    fresh_table($m, 'php_text_min', 'CREATE TABLE %s (id INT PRIMARY KEY, n BIGINT)');
    $m->query('INSERT INTO php_text_min VALUES (1, ' . PHP_INT_MIN . ')');
    check('min bigint', $m->query('SELECT n FROM php_text_min')->fetch_row(), [(string)PHP_INT_MIN]);
}

function scenario_mysqli_prepared(): void
{
    $m = mysqli_connect_test();
    fresh_table($m, 'php_prep');
    $st = $m->prepare('INSERT INTO php_prep (' . COLS . ') VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    check('param_count', $st->param_count, 9);
    $id = $s = $t = $b = $n = $f = $d = $dd = $ts = null;
    $st->bind_param('isssidsss', $id, $s, $t, $b, $n, $f, $d, $dd, $ts);  // bound once ...
    foreach (array_merge(ROWS, EXTRA_ROWS) as $row) {
        [$id, $s, $t, $b, $n, $f, $d, $dd, $ts] = $row;                   // ... re-executed with new values
        $st->execute();
        check("row $id affected_rows", $st->affected_rows, 1);
    }
    // A BLOB sent in pieces with COM_STMT_SEND_LONG_DATA.
    $blob = $m->prepare('INSERT INTO php_prep (id, b) VALUES (?, ?)');
    $bid = 14;
    $null = null;
    $blob->bind_param('ib', $bid, $null);
    $blob->send_long_data(1, substr(RAW, 0, 3));
    $blob->send_long_data(1, substr(RAW, 3));
    $blob->execute();
    check('long data affected_rows', $blob->affected_rows, 1);
    $all = array_merge(ROWS, EXTRA_ROWS, [[14, null, null, RAW, null, null, null, null, null]]);

    // get_result: the binary protocol, native types
    $q = $m->prepare('SELECT ' . COLS . ' FROM php_prep WHERE id >= ? ORDER BY id');
    $min = 0;
    $q->bind_param('i', $min);
    $q->execute();
    check('get_result rows', $q->get_result()->fetch_all(MYSQLI_NUM), $all);
    $min = 12;                                                              // re-execute, new bound value
    $q->execute();
    check('get_result after rebinding nothing', $q->get_result()->fetch_all(MYSQLI_NUM), array_slice($all, 5));

    // bind_result + fetch
    $one = $m->prepare('SELECT ' . COLS . ' FROM php_prep WHERE id = ?');
    $want_id = 0;
    $one->bind_param('i', $want_id);
    foreach ($all as $row) {
        $want_id = $row[0];
        $one->execute();
        // free_result() below also unbinds the result variables (mysqlnd), so bind after each execute
        $one->bind_result($c0, $c1, $c2, $c3, $c4, $c5, $c6, $c7, $c8);
        $one->store_result();
        check("bind_result num_rows of $want_id", $one->num_rows, 1);
        check("bind_result fetch of $want_id", $one->fetch(), true);
        check("bind_result row $want_id", [$c0, $c1, $c2, $c3, $c4, $c5, $c6, $c7, $c8], $row);
        check("bind_result end of $want_id", $one->fetch(), null);
        $one->free_result();
    }
    // Parameters in expressions; the result types follow the values.
    $expr = $m->prepare('SELECT ? + 1, CONCAT(?, ?), ?');
    $a = 41;
    $x = 'é';
    $y = '🦫';
    $z = null;
    $expr->bind_param('isss', $a, $x, $y, $z);
    $expr->execute();
    check('expression row', $expr->get_result()->fetch_row(), [42, 'é🦫', null]);
    $m->close();
}

function scenario_mysqli_insert_id_and_affected_rows(): void
{
    $m = mysqli_connect_test();
    fresh_table($m, 'php_ai', 'CREATE TABLE %s (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))');
    $m->query("INSERT INTO php_ai (v) VALUES ('a')");
    $first = $m->insert_id;
    check('insert_id is an int > 0', is_int($first) && $first > 0, true);
    check('affected_rows', $m->affected_rows, 1);
    $m->query("INSERT INTO php_ai (v) VALUES ('b'), ('c')");
    $second = $m->insert_id;  // the first id of a multi-row insert
    check('multi-row affected_rows', $m->affected_rows, 2);
    check('multi-row insert_id', $m->query("SELECT id FROM php_ai WHERE v = 'b'")->fetch_row()[0], (string)$second);
    $st = $m->prepare('INSERT INTO php_ai (v) VALUES (?)');
    $v = 'd';
    $st->bind_param('s', $v);
    $st->execute();
    $third = $st->insert_id;
    check('stmt insert_id grows', $third > $second, true);
    check('connection insert_id follows the statement', $m->insert_id, $third);
    $v = 'e';
    $st->execute();
    check('re-executed insert_id grows', $st->insert_id > $third, true);
    check('LAST_INSERT_ID()', (int)$m->query('SELECT LAST_INSERT_ID()')->fetch_row()[0], $st->insert_id);
    $up = $m->prepare('UPDATE php_ai SET v = ? WHERE id >= ?');
    $nv = 'z';
    $from = $third;
    $up->bind_param('si', $nv, $from);
    $up->execute();
    check('update affected_rows', $up->affected_rows, 2);
    $up->execute();
    check('unchanged update affected_rows', $up->affected_rows, 0);
    $m->query("DELETE FROM php_ai WHERE v = 'z'");
    check('delete affected_rows', $m->affected_rows, 2);
    check('rows left', $m->query('SELECT * FROM php_ai')->num_rows, 3);
    $m->close();
}

function scenario_mysqli_transactions(): void
{
    $m = mysqli_connect_test();
    $other = mysqli_connect_test();
    fresh_table($m, 'php_tx', 'CREATE TABLE %s (id INT PRIMARY KEY, v VARCHAR(10))');
    $m->begin_transaction();
    $m->query("INSERT INTO php_tx VALUES (1, 'gone')");
    check('uncommitted row invisible', $other->query('SELECT COUNT(*) FROM php_tx')->fetch_row(), ['0']);
    $m->rollback();
    $m->begin_transaction();
    $st = $m->prepare('INSERT INTO php_tx VALUES (?, ?)');
    $id = 2;
    $v = 'kept';
    $st->bind_param('is', $id, $v);
    $st->execute();
    $m->commit();
    check('committed row visible', $other->query('SELECT id, v FROM php_tx')->fetch_all(), [['2', 'kept']]);
    $m->autocommit(false);
    $m->query("INSERT INTO php_tx VALUES (3, 'gone')");
    $m->rollback();
    $m->autocommit(true);
    check('autocommit(false) + rollback', $m->query('SELECT id FROM php_tx')->fetch_all(), [['2']]);
    $m->close();
    $other->close();
}

function scenario_mysqli_errors(): void
{
    $m = mysqli_connect_test();
    fresh_table($m, 'php_err', 'CREATE TABLE %s (id INT PRIMARY KEY, v VARCHAR(10))');
    $m->query("INSERT INTO php_err VALUES (1, 'a')");
    $e = raises(fn() => $m->query("INSERT INTO php_err VALUES (1, 'b')"));
    check('duplicate key code', $e?->getCode(), 1062);
    check('duplicate key sqlstate', $e instanceof mysqli_sql_exception ? $e->getSqlState() : null, '23000');
    $e = raises(fn() => $m->query('SELEC 1'));
    check('syntax error code', $e?->getCode(), 1064);
    check('syntax error sqlstate', $e instanceof mysqli_sql_exception ? $e->getSqlState() : null, '42000');
    $e = raises(fn() => $m->query('SELECT * FROM php_no_such_table'));
    check('unknown table code', $e?->getCode(), 1146);
    $st = $m->prepare('INSERT INTO php_err VALUES (?, ?)');
    $id = 1;
    $v = 'c';
    $st->bind_param('is', $id, $v);
    $e = raises(fn() => $st->execute());
    check('prepared duplicate key code', $e?->getCode(), 1062);
    $id = 2;
    $st->execute();  // the statement is still usable
    check('usable after errors', $m->query('SELECT id, v FROM php_err ORDER BY id')->fetch_all(),
        [['1', 'a'], ['2', 'c']]);
    // Without exceptions: errno / sqlstate / error on the connection.
    mysqli_report(MYSQLI_REPORT_OFF);
    check('query returns false', $m->query('SELEC 1'), false);
    check('errno', $m->errno, 1064);
    check('sqlstate', $m->sqlstate, '42000');
    check('error message', str_contains($m->error, 'SQL syntax'), true);
    check('ping', $m->ping(), true);
    $m->close();
}

function scenario_mysqli_multi_query(): void
{
    $m = mysqli_connect_test();
    fresh_table($m, 'php_multi', 'CREATE TABLE %s (id INT PRIMARY KEY, v VARCHAR(10))');
    $m->multi_query("INSERT INTO php_multi VALUES (1, 'a'), (2, 'b'); SELECT 'x' AS one, 2 AS two; "
        . "UPDATE php_multi SET v = 'z' WHERE id = 1; SELECT id, v FROM php_multi ORDER BY id");
    $results = [];
    do {
        $r = $m->store_result();
        $results[] = $r === false ? ['affected' => $m->affected_rows] : $r->fetch_all();
    } while ($m->more_results() && $m->next_result());
    check('multi_query results', $results, [['affected' => 2], [['x', '2']], ['affected' => 1],
        [['1', 'z'], ['2', 'b']]]);
    // Execution stops at the first error; it is reported by next_result().
    $m->multi_query('SELECT 1; SELEC 2; SELECT 3');
    check('first result', $m->store_result()->fetch_all(), [['1']]);
    check('more results', $m->more_results(), true);
    $e = raises(fn() => $m->next_result());
    check('error in the middle', $e?->getCode(), 1064);
    check('usable afterwards', $m->query('SELECT 4')->fetch_row(), ['4']);
    $m->close();
}

function scenario_mysqli_unix_socket(): void
{
    global $SOCKET;
    mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
    $m = new mysqli('localhost', 'root', '', 'marmot', 0, $SOCKET);
    $m->set_charset('utf8mb4');
    check('over the unix socket', $m->query("SELECT DATABASE(), 'é中文🦫'")->fetch_row(), ['marmot', 'é中文🦫']);
    check('host info', str_contains($m->host_info, 'socket'), true);
    $m->close();
}

// --------------------------------------------------------------------------------------------- PDO

function pdo_round_trip(bool $emulate, string $table, array $rows): void
{
    $pdo = pdo_connect_test($emulate);
    fresh_table($pdo, $table);
    $st = $pdo->prepare("INSERT INTO $table (" . COLS . ') VALUES (:id, :s, :t, :b, :n, :f, :d, :dd, :ts)');
    foreach ($rows as $row) {
        [$id, $s, $t, $b, $n, $f, $d, $dd, $ts] = $row;
        $st->bindValue(':id', $id, PDO::PARAM_INT);
        $st->bindValue(':s', $s, $s === null ? PDO::PARAM_NULL : PDO::PARAM_STR);
        $st->bindValue(':t', $t, $t === null ? PDO::PARAM_NULL : PDO::PARAM_STR);
        $st->bindValue(':b', $b, $b === null ? PDO::PARAM_NULL : PDO::PARAM_LOB);
        $st->bindValue(':n', $n, $n === null ? PDO::PARAM_NULL : PDO::PARAM_INT);
        $st->bindValue(':f', $f);
        $st->bindValue(':d', $d);
        $st->bindValue(':dd', $dd);
        $st->bindValue(':ts', $ts);
        $st->execute();
        check("row $id rowCount", $st->rowCount(), 1);
    }
    $q = $pdo->prepare('SELECT ' . COLS . " FROM $table WHERE id >= ? ORDER BY id");
    $q->execute([0]);
    check('rows', $q->fetchAll(PDO::FETCH_NUM), $rows);
    $q->execute([$rows[count($rows) - 1][0]]);  // the same statement again, new value
    check('re-executed', $q->fetchAll(PDO::FETCH_NUM), [$rows[count($rows) - 1]]);
    $by_s = $pdo->prepare("SELECT id FROM $table WHERE s = ?");
    foreach ($rows as $row) {
        if ($row[1] !== null) {
            $by_s->execute([$row[1]]);
            check("lookup by s of row {$row[0]}", $by_s->fetchAll(PDO::FETCH_COLUMN), [$row[0]]);
        }
    }
}

function pdo_insert_id_and_row_count(bool $emulate): void
{
    $pdo = pdo_connect_test($emulate);
    fresh_table($pdo, 'php_pdo_ai', 'CREATE TABLE %s (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))');
    $st = $pdo->prepare('INSERT INTO php_pdo_ai (v) VALUES (:v)');
    $v = 'a';
    $st->bindParam(':v', $v);  // by reference: bound once
    $st->execute();
    $first = (int)$pdo->lastInsertId();
    check('lastInsertId > 0', $first > 0, true);
    $v = 'b';                   // changed, not re-bound
    $st->execute();
    $second = (int)$pdo->lastInsertId();
    check('lastInsertId grows', $second > $first, true);
    check('bound by reference', $pdo->query("SELECT v FROM php_pdo_ai WHERE id = $second")->fetchColumn(), 'b');
    check('exec rowCount', $pdo->exec("UPDATE php_pdo_ai SET v = 'z'"), 2);
    check('exec unchanged rowCount', $pdo->exec("UPDATE php_pdo_ai SET v = 'z'"), 0);
    $del = $pdo->prepare('DELETE FROM php_pdo_ai WHERE id = ?');
    $del->execute([$first]);
    check('delete rowCount', $del->rowCount(), 1);
    check('LAST_INSERT_ID()', (int)$pdo->query('SELECT LAST_INSERT_ID()')->fetchColumn(), $second);
}

function pdo_transactions_and_errors(bool $emulate): void
{
    $pdo = pdo_connect_test($emulate);
    $other = pdo_connect_test($emulate);
    fresh_table($pdo, 'php_pdo_tx', 'CREATE TABLE %s (id INT PRIMARY KEY, v VARCHAR(10))');
    check('beginTransaction', $pdo->beginTransaction(), true);
    check('inTransaction', $pdo->inTransaction(), true);
    $pdo->prepare('INSERT INTO php_pdo_tx VALUES (?, ?)')->execute([1, 'gone']);
    check('invisible before commit', $other->query('SELECT COUNT(*) FROM php_pdo_tx')->fetchColumn(), 0);
    check('rollBack', $pdo->rollBack(), true);
    $pdo->beginTransaction();
    $pdo->prepare('INSERT INTO php_pdo_tx VALUES (?, ?)')->execute([2, 'kept']);
    $e = raises(fn() => $pdo->prepare('INSERT INTO php_pdo_tx VALUES (?, ?)')->execute([2, 'dup']));
    check('duplicate key SQLSTATE', $e?->getCode(), '23000');
    check('duplicate key driver code', $e instanceof PDOException ? $e->errorInfo[1] : null, 1062);
    check('commit', $pdo->commit(), true);
    check('committed', $other->query('SELECT id, v FROM php_pdo_tx')->fetchAll(PDO::FETCH_NUM), [[2, 'kept']]);
    $e = raises(fn() => $pdo->query('SELEC 1'));
    check('syntax error SQLSTATE', $e?->getCode(), '42000');
    check('syntax error driver code', $e instanceof PDOException ? $e->errorInfo[1] : null, 1064);
    $e = raises(fn() => $pdo->prepare('SELECT * FROM php_no_such_table WHERE id = ?')->execute([1]));
    check('unknown table driver code', $e instanceof PDOException ? $e->errorInfo[1] : null, 1146);
    check('usable afterwards', $pdo->query('SELECT 1 + 1')->fetchColumn(), 2);
    $pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_SILENT);
    check('silent mode returns false', $pdo->exec("INSERT INTO php_pdo_tx VALUES (2, 'again')"), false);
    check('errorCode', $pdo->errorCode(), '23000');
    check('errorInfo', $pdo->errorInfo()[1], 1062);
}

function scenario_pdo_native(): void
{
    pdo_round_trip(false, 'php_pdo_native', array_merge(ROWS, EXTRA_ROWS));
    pdo_insert_id_and_row_count(false);
    pdo_transactions_and_errors(false);
}

function scenario_pdo_emulated(): void
{
    pdo_round_trip(true, 'php_pdo_emulated', ROWS);
    pdo_insert_id_and_row_count(true);
    pdo_transactions_and_errors(true);
    // Emulated prepares allow several statements in one query(), read with nextRowset().
    $pdo = pdo_connect_test(true);
    $st = $pdo->query("SELECT 1 AS a; SELECT 'two' AS b, 2 AS c; DO 0; SELECT 'é中文🦫'");
    $sets = [];
    do {
        $sets[] = $st->columnCount() ? $st->fetchAll(PDO::FETCH_NUM) : $st->rowCount();
    } while ($st->nextRowset());
    check('rowsets', $sets, [[[1]], [['two', 2]], 0, [['é中文🦫']]]);
}

function scenario_pdo_emulated_binary(): void
{
    pdo_round_trip(true, 'php_pdo_emulated_raw', [[21, 'raw', null, RAW, null, null, null, null, null]]);
}

function scenario_pdo_emulated_min_bigint(): void
{
    pdo_round_trip(true, 'php_pdo_emulated_min', [[22, 'min', null, null, PHP_INT_MIN, null, null, null, null]]);
}

// ---------------------------------------------------------------------------------------------- main

$fn = 'scenario_' . $SCENARIO;
if (!function_exists($fn)) {
    fwrite(STDERR, "unknown scenario '$SCENARIO'\n");
    exit(2);
}
try {
    $fn();
} catch (Throwable $e) {
    $FAILURES[] = 'uncaught ' . get_class($e) . ' (' . $e->getCode() . '): ' . $e->getMessage()
        . ' at line ' . $e->getLine();
}
echo json_encode(['checks' => $CHECKS, 'failures' => $FAILURES],
    JSON_INVALID_UTF8_SUBSTITUTE | JSON_UNESCAPED_UNICODE), "\n";
