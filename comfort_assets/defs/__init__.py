"""Everything Dagster loads, discovered by `dg.load_from_defs_folder`: one folder per asset
group, the jobs and schedules in `automation`, the deployment's resources in `resources`."""
