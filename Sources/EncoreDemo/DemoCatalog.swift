/// The embedded demo: a catalog of post-purchase offers of every kind Encore is built for.
/// Every surface (cart, payment, thank_you, confirmation) has at least three eligible offers.
public enum DemoCatalog {
    /// The catalog, one JSON object per line (the `--catalog` file format).
    public static let jsonl = """
        {"offer_id": "gift_box", "kind": "gift_box", "title": "Gift box with ribbon", "surfaces": ["cart", "payment", "confirmation"], "value_cents": 500}
        {"offer_id": "gift_message", "kind": "gift_box", "title": "Handwritten gift message", "surfaces": ["cart", "payment"], "value_cents": 200}
        {"offer_id": "rush_shipping", "kind": "rush_shipping", "title": "Rush shipping: arrives tomorrow", "surfaces": ["cart", "payment"], "value_cents": 999}
        {"offer_id": "express_upgrade", "kind": "rush_shipping", "title": "Upgrade to 2-day express", "surfaces": ["payment", "confirmation"], "value_cents": 599}
        {"offer_id": "shipping_protection", "kind": "shipping_protection", "title": "Shipping protection", "surfaces": ["cart", "payment", "confirmation"], "value_cents": 299}
        {"offer_id": "complementary_socks", "kind": "complementary_item", "title": "Matching socks, 30% off", "surfaces": ["cart", "thank_you"], "value_cents": 899}
        {"offer_id": "complementary_case", "kind": "complementary_item", "title": "Protective case for your device", "surfaces": ["thank_you", "confirmation"], "value_cents": 1999}
        {"offer_id": "referral_give20_get20", "kind": "referral", "title": "Give $20, get $20", "surfaces": ["thank_you", "confirmation", "email"], "value_cents": 2000}
        {"offer_id": "review_precommit", "kind": "review_precommitment", "title": "Promise a review, get 5% back", "surfaces": ["thank_you", "confirmation", "email"], "value_cents": 150}
        {"offer_id": "loyalty_enroll", "kind": "loyalty_enrollment", "title": "Join the loyalty club", "surfaces": ["payment", "thank_you", "confirmation"], "value_cents": 800}
        {"offer_id": "loyalty_double_points", "kind": "loyalty_enrollment", "title": "Double points on this order", "surfaces": ["cart", "thank_you"], "value_cents": 300}
        {"offer_id": "partner_streaming_trial", "kind": "partner_offer", "title": "3 months of streaming, free", "surfaces": ["thank_you", "confirmation"], "value_cents": 1200, "partner": "streamco"}
        {"offer_id": "partner_card", "kind": "partner_offer", "title": "Store card: $50 off today", "surfaces": ["confirmation", "thank_you", "email"], "value_cents": 5000, "partner": "bankco"}
        {"offer_id": "extended_warranty", "kind": "complementary_item", "title": "2-year extended warranty", "surfaces": ["cart", "payment"], "value_cents": 2499}
        {"offer_id": "donation_roundup", "kind": "partner_offer", "title": "Round up for charity", "surfaces": ["payment", "thank_you"], "value_cents": 50}
        {"offer_id": "next_order_discount", "kind": "referral", "title": "15% off your next order", "surfaces": ["confirmation", "email", "thank_you"], "value_cents": 700}
        """
}
