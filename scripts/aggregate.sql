-- censorprobe's aggregation (`censorprobe aggregate --by service,probe_cc,probe_asn,day`)
-- in DuckDB SQL, for researchers who keep their runs in a lake of files.
--
-- Input: a view or table named `verdicts` with the columns of verdicts.csv, e.g.
--   CREATE VIEW verdicts AS SELECT * FROM read_csv('runs/**/verdicts.csv', union_by_name = true, all_varchar = true);
--   CREATE VIEW verdicts AS SELECT * FROM read_parquet('runs/**/verdicts.parquet', union_by_name = true);
-- then `.read scripts/aggregate.sql` (CLI) or con.execute(open('scripts/aggregate.sql').read()) (Python).
-- Output: the same columns and rows as `censorprobe aggregate` (blocked and anomalous
-- rows by blocking kind). Unlike the binary, it does not check schema versions nor what
-- a run is (docs/data.md): check run.json yourself when mixing software versions.
-- Schema-1 and schema-2 files mix with union_by_name; the four later columns are then
-- NULL for the older rows.
SELECT
    service,
    probe_cc,
    probe_asn,
    substr(measured_at, 1, 10) AS day,
    count(*) AS targets,
    count(*) FILTER (WHERE verdict = 'ok') AS ok,
    count(*) FILTER (WHERE verdict = 'blocked') AS blocked,
    count(*) FILTER (WHERE verdict = 'anomaly') AS anomaly,
    count(*) FILTER (WHERE verdict = 'down') AS down,
    count(*) FILTER (WHERE verdict = 'inconclusive') AS inconclusive,
    round(ok / targets, 4) AS ok_share,
    round(blocked / targets, 4) AS blocked_share,
    round(anomaly / targets, 4) AS anomaly_share,
    round(down / targets, 4) AS down_share,
    round(inconclusive / targets, 4) AS inconclusive_share,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'dns-hijack') AS blocked_dns_hijack,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'dns-nxdomain') AS blocked_dns_nxdomain,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'dns-failure') AS blocked_dns_failure,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'dns-injection') AS blocked_dns_injection,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tcp-blackhole') AS blocked_tcp_blackhole,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tcp-reset') AS blocked_tcp_reset,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tcp-refused') AS blocked_tcp_refused,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'protocol-filtered') AS blocked_protocol_filtered,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tls-reset') AS blocked_tls_reset,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tls-timeout') AS blocked_tls_timeout,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tls-mitm') AS blocked_tls_mitm,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tls-failure') AS blocked_tls_failure,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tls-stall') AS blocked_tls_stall,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'tls-fingerprint') AS blocked_tls_fingerprint,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'ech-blocked') AS blocked_ech_blocked,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'http-blockpage') AS blocked_http_blockpage,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'http-diff') AS blocked_http_diff,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'http-failure') AS blocked_http_failure,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'throttled') AS blocked_throttled,
    count(*) FILTER (WHERE verdict = 'blocked' AND blocking = 'quic-blocked') AS blocked_quic_blocked,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'dns-hijack') AS anomaly_dns_hijack,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'dns-nxdomain') AS anomaly_dns_nxdomain,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'dns-failure') AS anomaly_dns_failure,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'dns-injection') AS anomaly_dns_injection,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tcp-blackhole') AS anomaly_tcp_blackhole,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tcp-reset') AS anomaly_tcp_reset,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tcp-refused') AS anomaly_tcp_refused,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'protocol-filtered') AS anomaly_protocol_filtered,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tls-reset') AS anomaly_tls_reset,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tls-timeout') AS anomaly_tls_timeout,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tls-mitm') AS anomaly_tls_mitm,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tls-failure') AS anomaly_tls_failure,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tls-stall') AS anomaly_tls_stall,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'tls-fingerprint') AS anomaly_tls_fingerprint,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'ech-blocked') AS anomaly_ech_blocked,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'http-blockpage') AS anomaly_http_blockpage,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'http-diff') AS anomaly_http_diff,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'http-failure') AS anomaly_http_failure,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'throttled') AS anomaly_throttled,
    count(*) FILTER (WHERE verdict = 'anomaly' AND blocking = 'quic-blocked') AS anomaly_quic_blocked
FROM verdicts
GROUP BY ALL
ORDER BY service, probe_cc, probe_asn, day;
