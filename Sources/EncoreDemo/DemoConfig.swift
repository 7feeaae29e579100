/// The embedded demo's rule configuration (the `--config` format, docs/configuration.md): a 5%
/// sticky holdout, at most 3 shows of an offer per customer per day, 30 days of silence after a
/// decline, a relevance threshold, and daily budgets on the partner offers. A `--config` file
/// given with the demo overrides these key by key.
public enum DemoConfig {
    public static let json = """
        {
          "holdout": {"share": 0.05, "salt": "encore-holdout-v1"},
          "rules": {
            "frequency_cap_per_day": 3,
            "decline_suppression_days": 30,
            "min_expected_value": 0.03,
            "budgets": {
              "partner_streaming_trial": {"daily_shows": 20000},
              "partner_card": {"daily_acceptances": 500},
              "donation_roundup": {"daily_shows": 50000}
            }
          }
        }
        """
}
