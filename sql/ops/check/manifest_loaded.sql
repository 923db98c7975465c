-- Whether a manifest is loaded (a full check then computes manifest_compare once: manifest_compare_keep).
SELECT EXISTS (SELECT 1 FROM manifest);
