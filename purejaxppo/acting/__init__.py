"""Using a trained policy: `make_policy`, `evaluate`, export (`save_policy` /
`load_policy`) and rendering episodes."""
