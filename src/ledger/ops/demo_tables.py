"""The demo's fixed tables: where customers live, what they are called, what the shop sells and
what they write in comments. Data only (demo.py makes the history)."""

COUNTRIES = {  # country: (weight, currency, calling code, cities)
    "DE": (30, "EUR", "+49", ("Berlin", "Hamburg", "Munich", "Cologne", "Leipzig")),
    "FR": (18, "EUR", "+33", ("Paris", "Lyon", "Marseille", "Lille")),
    "NL": (14, "EUR", "+31", ("Amsterdam", "Rotterdam", "Utrecht")),
    "ES": (12, "EUR", "+34", ("Madrid", "Barcelona", "Valencia")),
    "GB": (16, "GBP", "+44", ("London", "Manchester", "Leeds", "Bristol")),
    "US": (10, "USD", "+1", ("New York", "Chicago", "Austin", "Seattle")),
}
FX = {"EUR": 1.0, "GBP": 0.86, "USD": 1.08}
FIRST = ("Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ines", "Jonas",
         "Lea", "Lucas", "Maria", "Noah", "Olivia", "Paul", "Sofia", "Tom", "Julia", "Marco")
LAST = ("Schmidt", "Martin", "de Vries", "Garcia", "Smith", "Johnson", "Mueller", "Bernard",
        "Jansen", "Lopez", "Brown", "Weber", "Dubois", "Bakker", "Fernandez", "Taylor")
# Prices in EUR minor units; other currencies convert by FX to their own .99 price point.
CATALOGUE = {"SKU-1001": 1999, "SKU-1002": 4999, "SKU-1003": 899, "SKU-2001": 12999,
             "SKU-2002": 2499, "SKU-3001": 599, "SKU-3002": 7999, "SKU-4001": 34999}
# Accessories: bought with their item (the planted pairs), seldom alone.
ACCESSORIES = {"SKU-5001": ("SKU-4001", 1499, 0.6), "SKU-5002": ("SKU-2001", 999, 0.5)}
ACCESSORY_ALONE = 0.015  # of baskets that hold an accessory without its item
ACCESSORY_LATER = 0.5  # of buyers of an item without its accessory, whose next order brings it
PRICES = {**CATALOGUE, **{sku: price for sku, (_, price, _) in ACCESSORIES.items()}}
LEAVER_SHARE, FADE_DAYS = 0.15, 150  # of loyal customers who leave; how long they fade first
REFUND_REASONS = ("returned", "damaged", "late_delivery", "wrong_item", "goodwill")
COMMENTS = {"low": ("Waited far too long on hold.", "Still waiting for my refund.",
                    "Nobody called me back.", "Had to explain everything three times."),
            "mid": ("OK in the end, but it took a while.", "Fine, nothing special."),
            "high": ("Quick and friendly help, thanks!", "Great service as always.")}
