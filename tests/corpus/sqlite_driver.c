/*
 * Driver for the SQLite corpus program.
 *
 * Usage: sqlite_driver OUTFILE
 *
 * Opens an in-memory database, creates tables and indexes, inserts a few
 * thousand generated rows and runs joins, GROUP BY, window functions, CTEs,
 * JSON and math functions and some failing statements, writing every result
 * row (and every error message) to OUTFILE. Returns 0 when every statement
 * that should succeed did and every statement that should fail did.
 *
 * The libjitrt tests call main() inside the test process, so this file
 * never calls exit() and keeps no state between calls (the row generator
 * is reseeded in main).
 */
#include <stdio.h>
#include <string.h>

#include "sqlite3.h"

static FILE *out;
static int failures;
static unsigned long long rng_state;

static unsigned rng(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33);
}

static int print_row(void *label, int ncol, char **values, char **names) {
    int i;
    (void)names;
    fprintf(out, "%s:", (const char *)label);
    for (i = 0; i < ncol; i++)
        fprintf(out, "%s%s", i ? "|" : " ", values[i] ? values[i] : "NULL");
    fputc('\n', out);
    return 0;
}

/* Runs SQL that must succeed, printing result rows prefixed with label. */
static void run(sqlite3 *db, const char *label, const char *sql) {
    char *err = NULL;
    fprintf(out, "-- %s\n", label);
    if (sqlite3_exec(db, sql, print_row, (void *)label, &err) != SQLITE_OK) {
        fprintf(out, "UNEXPECTED ERROR in %s: %s\n", label, err ? err : "?");
        fprintf(stderr, "sqlite_driver: unexpected error in %s: %s\n", label, err ? err : "?");
        failures++;
    }
    sqlite3_free(err);
}

/* Runs SQL that must fail, printing the error code and message. */
static void run_expect_error(sqlite3 *db, const char *label, const char *sql) {
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, print_row, (void *)label, &err);
    fprintf(out, "-- %s\n", label);
    if (rc == SQLITE_OK) {
        fprintf(out, "UNEXPECTED SUCCESS in %s\n", label);
        fprintf(stderr, "sqlite_driver: unexpected success in %s\n", label);
        failures++;
    } else {
        fprintf(out, "%s: expected error %d (%s): %s\n", label, rc, sqlite3_errstr(rc),
                err ? err : "?");
    }
    sqlite3_free(err);
}

static const char *const regions[] = {"north", "south", "east", "west", "central"};
static const char *const tiers[] = {"bronze", "silver", "gold"};
static const char *const syllables[] = {"ka", "lo", "mi", "ne", "ra", "su", "to", "vi"};

static int insert_rows(sqlite3 *db) {
    sqlite3_stmt *cust = NULL, *ord = NULL;
    int i, rc = SQLITE_OK;

    rc = sqlite3_prepare_v2(db,
                            "INSERT INTO customers(id, name, region, meta) VALUES (?1, ?2, ?3, "
                            "json_object('tier', ?4, 'since', ?5, 'tags', json_array(?6, ?7)))",
                            -1, &cust, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            db, "INSERT INTO orders(customer_id, product_id, qty, amount, day) VALUES (?, ?, ?, ?, ?)",
            -1, &ord, NULL);
    if (rc != SQLITE_OK)
        goto done;
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (i = 1; i <= 250 && rc == SQLITE_OK; i++) {
        char name[32];
        /* One call per statement: argument evaluation order is unspecified. */
        const char *s1 = syllables[rng() % 8];
        const char *s2 = syllables[rng() % 8];
        const char *s3 = syllables[rng() % 8];
        snprintf(name, sizeof name, "%s%s%s-%d", s1, s2, s3, i);
        sqlite3_bind_int(cust, 1, i);
        sqlite3_bind_text(cust, 2, name, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(cust, 3, regions[rng() % 5], -1, SQLITE_STATIC);
        sqlite3_bind_text(cust, 4, tiers[rng() % 3], -1, SQLITE_STATIC);
        sqlite3_bind_int(cust, 5, 2000 + (int)(rng() % 25));
        sqlite3_bind_text(cust, 6, (rng() & 1) ? "vip" : "std", -1, SQLITE_STATIC);
        sqlite3_bind_int(cust, 7, (int)(rng() % 100));
        rc = sqlite3_step(cust) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(cust);
    }
    for (i = 1; i <= 4000 && rc == SQLITE_OK; i++) {
        sqlite3_bind_int(ord, 1, 1 + (int)(rng() % 250));
        sqlite3_bind_int(ord, 2, 1 + (int)(rng() % 40));
        sqlite3_bind_int(ord, 3, 1 + (int)(rng() % 9));
        sqlite3_bind_double(ord, 4, (double)(rng() % 100000) / 100.0);
        sqlite3_bind_int(ord, 5, (int)(rng() % 365));
        rc = sqlite3_step(ord) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(ord);
    }
    sqlite3_exec(db, rc == SQLITE_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
done:
    if (rc != SQLITE_OK)
        fprintf(stderr, "sqlite_driver: insert failed: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(cust);
    sqlite3_finalize(ord);
    return rc;
}

int main(int argc, char **argv) {
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;

    if (argc < 2) {
        fprintf(stderr, "usage: %s OUTFILE\n", argc > 0 ? argv[0] : "sqlite_driver");
        return 2;
    }
    out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 2;
    }
    failures = 0;
    rng_state = 0x5eed;

    fprintf(out, "== sqlite driver: sqlite %s, threadsafe=%d\n", sqlite3_libversion(),
            sqlite3_threadsafe());
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "sqlite_driver: cannot open :memory:: %s\n", sqlite3_errmsg(db));
        sqlite3_close(db);
        fclose(out);
        return 1;
    }

    run(db, "schema",
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
        "  region TEXT NOT NULL, meta TEXT CHECK (json_valid(meta)));"
        "CREATE TABLE products(id INTEGER PRIMARY KEY, label TEXT, price REAL);"
        "CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES"
        "  customers(id), product_id INTEGER REFERENCES products(id), qty INTEGER, amount REAL,"
        "  day INTEGER);"
        "CREATE INDEX orders_by_customer ON orders(customer_id, day);"
        "CREATE INDEX orders_by_product ON orders(product_id);"
        "CREATE INDEX customers_by_region ON customers(region);");
    run(db, "products",
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)"
        " INSERT INTO products SELECT i, 'product-' || printf('%02d', i), round(i * 1.25 + 0.99, 2)"
        " FROM n;");
    if (insert_rows(db) != SQLITE_OK)
        failures++;

    run(db, "counts",
        "SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM orders),"
        " (SELECT count(*) FROM products);");
    run(db, "join-group",
        "SELECT c.region, count(*), sum(o.qty), printf('%.2f', sum(o.amount)),"
        " printf('%.3f', avg(o.amount)), min(o.day), max(o.day)"
        " FROM orders o JOIN customers c ON c.id = o.customer_id"
        " GROUP BY c.region ORDER BY c.region;");
    run(db, "three-way-join-having",
        "SELECT p.label, count(DISTINCT o.customer_id) AS buyers, sum(o.qty) AS units,"
        " printf('%.2f', sum(o.qty * p.price)) FROM orders o"
        " JOIN products p ON p.id = o.product_id JOIN customers c ON c.id = o.customer_id"
        " WHERE c.region IN ('north', 'east') GROUP BY p.id HAVING units > 150"
        " ORDER BY units DESC, p.id LIMIT 10;");
    run(db, "left-join",
        "SELECT c.id, c.name, count(o.id) FROM customers c LEFT JOIN orders o"
        " ON o.customer_id = c.id AND o.day < 30 GROUP BY c.id ORDER BY count(o.id), c.id"
        " LIMIT 8;");
    run(db, "window",
        "SELECT customer_id, day, printf('%.2f', amount),"
        " printf('%.2f', sum(amount) OVER (PARTITION BY customer_id ORDER BY day, id"
        "   ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)),"
        " rank() OVER (PARTITION BY customer_id ORDER BY amount DESC),"
        " row_number() OVER (ORDER BY customer_id, day, id),"
        " lag(day) OVER (PARTITION BY customer_id ORDER BY day, id)"
        " FROM orders WHERE customer_id <= 4 ORDER BY customer_id, day, id;");
    run(db, "window-ntile",
        "SELECT region, name, total, ntile(4) OVER (ORDER BY total DESC, name),"
        " dense_rank() OVER (PARTITION BY region ORDER BY total DESC) FROM ("
        "  SELECT c.region, c.name, sum(o.qty) AS total FROM customers c"
        "  JOIN orders o ON o.customer_id = c.id GROUP BY c.id)"
        " ORDER BY total DESC, name LIMIT 12;");
    run(db, "cte",
        "WITH monthly(month, revenue) AS ("
        "  SELECT day / 30, sum(amount) FROM orders GROUP BY day / 30),"
        " ranked AS (SELECT month, revenue, revenue - lag(revenue, 1, 0) OVER (ORDER BY month)"
        "  AS delta FROM monthly)"
        " SELECT month, printf('%.2f', revenue), printf('%.2f', delta) FROM ranked"
        " ORDER BY month;");
    run(db, "recursive-cte",
        "WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0, 1 UNION ALL"
        " SELECT n + 1, b, a + b FROM fib WHERE n < 60) SELECT n, a FROM fib WHERE n % 10 = 0;");
    run(db, "json",
        "SELECT json_extract(meta, '$.tier') AS tier, count(*),"
        " json_group_array(id) FILTER (WHERE id <= 40),"
        " min(json_extract(meta, '$.since')), max(json_extract(meta, '$.tags[1]'))"
        " FROM customers GROUP BY tier ORDER BY tier;");
    run(db, "json-each",
        "SELECT c.id, j.key, j.value, j.type FROM customers c, json_each(c.meta) j"
        " WHERE c.id IN (1, 2) ORDER BY c.id, j.key;");
    run(db, "json-object",
        "SELECT json_object('region', region, 'n', count(*), 'names',"
        " json_group_array(name)) FROM (SELECT region, name FROM customers"
        " WHERE id % 50 = 0 ORDER BY id) GROUP BY region ORDER BY region;");
    run(db, "math",
        "SELECT printf('%.6f', sqrt(2)), printf('%.6f', pow(2, 0.5)), printf('%.6f', ln(10)),"
        " printf('%.6f', pi()), ceil(2.1), floor(-2.1), 7 % 3, abs(-5), round(2.5), round(-2.5);");
    run(db, "strings",
        "SELECT upper(substr(name, 1, 4)), length(name), instr(name, '-'),"
        " replace(name, 'a', 'A'), name LIKE '%ka%', hex(substr(name, 1, 2)), quote(name)"
        " FROM customers WHERE id % 83 = 0 ORDER BY id;");
    run(db, "update-delete",
        "UPDATE orders SET amount = amount * 1.1 WHERE day % 7 = 0;"
        " SELECT changes();"
        " DELETE FROM orders WHERE qty = 1 AND day > 300;"
        " SELECT changes(), count(*) FROM orders;"
        " SELECT printf('%.2f', sum(amount)) FROM orders;");
    run(db, "subquery-exists",
        "SELECT c.region, count(*) FROM customers c WHERE EXISTS (SELECT 1 FROM orders o"
        " WHERE o.customer_id = c.id AND o.amount > 990) GROUP BY c.region ORDER BY 2 DESC, 1;");
    run(db, "union-except",
        "SELECT product_id FROM orders WHERE qty = 9 AND day < 20 UNION"
        " SELECT id FROM products WHERE price > 50 EXCEPT SELECT 3 ORDER BY 1;");
    run(db, "savepoint",
        "SAVEPOINT sp; DELETE FROM orders; SELECT count(*) FROM orders; ROLLBACK TO sp;"
        " RELEASE sp; SELECT count(*) FROM orders;");

    run_expect_error(db, "error-unique", "INSERT INTO customers(id, name, region, meta)"
                                         " VALUES (1, 'dup', 'north', '{}');");
    run_expect_error(db, "error-check", "INSERT INTO customers(name, region, meta)"
                                        " VALUES ('badjson', 'north', '{not json');");
    run_expect_error(db, "error-no-table", "SELECT * FROM no_such_table;");
    run_expect_error(db, "error-syntax", "SELEC 1;");
    run_expect_error(db, "error-raise", "SELECT CASE WHEN 1 THEN raise(ABORT, 'raised') END;");

    /* Prepared statement with bound parameters and column type inspection. */
    fprintf(out, "-- prepared\n");
    if (sqlite3_prepare_v2(db,
                           "SELECT id, name, region, json_extract(meta, '$.since'), NULL,"
                           " x'cafe' FROM customers WHERE region = ?1 ORDER BY id LIMIT ?2",
                           -1, &stmt, NULL) == SQLITE_OK) {
        int rc, rows = 0;
        sqlite3_bind_text(stmt, 1, "west", -1, SQLITE_STATIC);
        sqlite3_bind_int(stmt, 2, 5);
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            int i;
            fprintf(out, "prepared:");
            for (i = 0; i < sqlite3_column_count(stmt); i++)
                fprintf(out, " %s=%d:%d", sqlite3_column_name(stmt, i),
                        sqlite3_column_type(stmt, i), sqlite3_column_bytes(stmt, i));
            fprintf(out, " %lld %s\n", sqlite3_column_int64(stmt, 0),
                    (const char *)sqlite3_column_text(stmt, 1));
            rows++;
        }
        if (rc != SQLITE_DONE || rows != 5) {
            fprintf(stderr, "sqlite_driver: prepared statement: rc=%d rows=%d\n", rc, rows);
            failures++;
        }
        sqlite3_finalize(stmt);
    } else {
        fprintf(stderr, "sqlite_driver: prepare failed: %s\n", sqlite3_errmsg(db));
        failures++;
    }

    if (sqlite3_close(db) != SQLITE_OK) {
        fprintf(stderr, "sqlite_driver: close failed\n");
        failures++;
    }
    fprintf(out, "%s failures=%d\n", failures ? "SQLITE DRIVER FAILED" : "SQLITE DRIVER OK",
            failures);
    fclose(out);
    out = NULL;
    return failures ? 1 : 0;
}
