-- Final states of the manifest reconciliation (temp table manifest_final): in the manifest or not, per state.
SELECT in_manifest, final_state, count(*) AS instances
FROM manifest_final
GROUP BY ALL
ORDER BY in_manifest DESC, final_state;
