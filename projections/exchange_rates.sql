-- Exchange rates: the rates the last refresh converted orders with, from the file named by the
-- setting `exchange_rates` (LEDGER_EXCHANGE_RATES), read and checked by projection/rates.py and
-- given to this section as the Arrow table `exchange_rates_file` (empty without a file). Loaded
-- again at each refresh, so the published copy shows what its orders and RFM were converted with.
-- No key constraint: the file's (currency, valid_from) are checked unique before loading.
-- depends:

-- section: schema
CREATE TABLE exchange_rates (
    currency            VARCHAR NOT NULL,
    valid_from          DATE NOT NULL,
    rate                DECIMAL(38, 12) NOT NULL,
    reporting_currency  VARCHAR NOT NULL,
    minor_numerator     HUGEINT NOT NULL,
    minor_denominator   HUGEINT NOT NULL,
    source              VARCHAR NOT NULL,
    line                BIGINT NOT NULL
);

-- section: refresh
DELETE FROM exchange_rates;
INSERT INTO exchange_rates
SELECT currency, valid_from, rate, reporting_currency, minor_numerator::HUGEINT, minor_denominator::HUGEINT,
       source, line
FROM exchange_rates_file;
