//! The simulated universe: underlyings, their popularity and their spot prices.
//!
//! [`LISTINGS`] is a hard-coded list of real US optionable tickers in rough
//! order of options activity, each with an approximate reference price and a
//! base implied volatility. Popularity is Zipf-like by rank (weight
//! `1 / (rank + 1)`), so SPY, QQQ, SPX, TSLA and NVDA dominate and the tail is
//! long. Each underlying's spot follows a mean-reverting random walk in log
//! price around its reference (Ornstein–Uhlenbeck with a half-life of a few
//! sessions), so prices wander plausibly within a day and never run away in a
//! long soak run. Listing details (expiry cycle, tick rule, strike spacing,
//! single-venue index products) follow the real US market's conventions.

use super::venues;
use crate::feed::rng::Rng;

/// `(ticker, reference price in USD, base implied volatility)`, most active first.
pub const LISTINGS: &[(&str, f64, f64)] = &[
    ("SPY", 670.0, 0.15),
    ("QQQ", 600.0, 0.19),
    ("SPX", 6700.0, 0.15),
    ("TSLA", 430.0, 0.55),
    ("NVDA", 180.0, 0.45),
    ("IWM", 245.0, 0.21),
    ("AAPL", 260.0, 0.26),
    ("AMZN", 225.0, 0.32),
    ("META", 700.0, 0.33),
    ("AMD", 230.0, 0.50),
    ("MSFT", 510.0, 0.24),
    ("PLTR", 180.0, 0.60),
    ("GOOGL", 280.0, 0.30),
    ("NDX", 24500.0, 0.19),
    ("AVGO", 340.0, 0.42),
    ("MSTR", 300.0, 0.70),
    ("HOOD", 130.0, 0.70),
    ("SMCI", 45.0, 0.75),
    ("COIN", 330.0, 0.65),
    ("NFLX", 110.0, 0.35),
    ("UBER", 95.0, 0.36),
    ("BABA", 165.0, 0.45),
    ("GLD", 380.0, 0.20),
    ("SLV", 45.0, 0.32),
    ("TLT", 90.0, 0.14),
    ("XLF", 53.0, 0.18),
    ("SOFI", 28.0, 0.65),
    ("INTC", 38.0, 0.55),
    ("MU", 200.0, 0.55),
    ("BAC", 52.0, 0.25),
    ("F", 12.0, 0.35),
    ("GOOG", 281.0, 0.30),
    ("DIA", 470.0, 0.15),
    ("RUT", 2450.0, 0.22),
    ("XSP", 670.0, 0.15),
    ("ARM", 150.0, 0.60),
    ("JPM", 300.0, 0.24),
    ("DIS", 112.0, 0.28),
    ("BA", 215.0, 0.33),
    ("PYPL", 68.0, 0.38),
    ("RIVN", 14.0, 0.65),
    ("LCID", 20.0, 0.75),
    ("NIO", 6.5, 0.75),
    ("GME", 23.0, 0.80),
    ("AMC", 3.0, 0.90),
    ("MARA", 18.0, 0.85),
    ("RIOT", 15.0, 0.85),
    ("CVNA", 350.0, 0.70),
    ("SNOW", 230.0, 0.50),
    ("SHOP", 150.0, 0.55),
    ("CRM", 240.0, 0.32),
    ("ORCL", 220.0, 0.50),
    ("ADBE", 340.0, 0.33),
    ("XOM", 115.0, 0.24),
    ("CVX", 155.0, 0.24),
    ("WMT", 100.0, 0.22),
    ("COST", 910.0, 0.22),
    ("TGT", 92.0, 0.38),
    ("HD", 380.0, 0.25),
    ("LLY", 800.0, 0.35),
    ("UNH", 330.0, 0.40),
    ("PFE", 25.0, 0.26),
    ("MRNA", 27.0, 0.65),
    ("JNJ", 190.0, 0.18),
    ("ABBV", 225.0, 0.25),
    ("KO", 69.0, 0.16),
    ("PEP", 145.0, 0.20),
    ("MCD", 300.0, 0.18),
    ("SBUX", 85.0, 0.32),
    ("NKE", 65.0, 0.38),
    ("LULU", 170.0, 0.48),
    ("V", 340.0, 0.20),
    ("MA", 570.0, 0.21),
    ("C", 100.0, 0.28),
    ("WFC", 85.0, 0.26),
    ("GS", 780.0, 0.28),
    ("MS", 160.0, 0.28),
    ("SCHW", 95.0, 0.28),
    ("T", 26.0, 0.22),
    ("VZ", 40.0, 0.20),
    ("CMCSA", 30.0, 0.28),
    ("CSCO", 70.0, 0.25),
    ("QCOM", 165.0, 0.35),
    ("TXN", 170.0, 0.32),
    ("MRVL", 85.0, 0.60),
    ("ON", 50.0, 0.55),
    ("TSM", 290.0, 0.38),
    ("ASML", 1000.0, 0.38),
    ("DELL", 130.0, 0.48),
    ("HPQ", 27.0, 0.35),
    ("IBM", 290.0, 0.28),
    ("ABNB", 125.0, 0.38),
    ("DASH", 240.0, 0.42),
    ("RBLX", 130.0, 0.55),
    ("U", 40.0, 0.65),
    ("DKNG", 35.0, 0.50),
    ("PENN", 18.0, 0.50),
    ("CCL", 28.0, 0.45),
    ("RCL", 290.0, 0.42),
    ("NCLH", 22.0, 0.48),
    ("AAL", 13.0, 0.50),
    ("DAL", 60.0, 0.40),
    ("UAL", 100.0, 0.48),
    ("LUV", 32.0, 0.38),
    ("CAT", 520.0, 0.32),
    ("DE", 470.0, 0.28),
    ("GE", 300.0, 0.30),
    ("GM", 70.0, 0.33),
    ("XLE", 90.0, 0.22),
    ("XLK", 290.0, 0.22),
    ("XLV", 140.0, 0.16),
    ("XLY", 235.0, 0.22),
    ("XLI", 155.0, 0.18),
    ("XLU", 88.0, 0.16),
    ("XLP", 78.0, 0.14),
    ("SMH", 340.0, 0.35),
    ("SOXL", 40.0, 1.10),
    ("TQQQ", 105.0, 0.60),
    ("SQQQ", 15.0, 0.60),
    ("UVXY", 12.0, 1.20),
    ("VXX", 40.0, 0.70),
    ("HYG", 81.0, 0.07),
    ("EEM", 53.0, 0.18),
    ("FXI", 40.0, 0.30),
    ("EWZ", 30.0, 0.30),
    ("KWEB", 38.0, 0.40),
    ("ARKK", 80.0, 0.48),
    ("USO", 72.0, 0.35),
    ("UNG", 14.0, 0.60),
    ("GDX", 75.0, 0.40),
    ("KRE", 62.0, 0.30),
    ("XBI", 110.0, 0.35),
    ("IBIT", 60.0, 0.50),
    ("TNA", 40.0, 0.65),
    ("LABU", 110.0, 1.00),
    ("PANW", 200.0, 0.35),
    ("CRWD", 500.0, 0.42),
    ("ZS", 290.0, 0.42),
    ("NET", 200.0, 0.55),
    ("DDOG", 150.0, 0.50),
    ("MDB", 330.0, 0.55),
    ("TEAM", 160.0, 0.50),
    ("NOW", 900.0, 0.35),
    ("INTU", 660.0, 0.32),
    ("WDAY", 230.0, 0.35),
    ("OKTA", 90.0, 0.45),
    ("TWLO", 110.0, 0.48),
    ("ZM", 82.0, 0.35),
    ("DOCU", 72.0, 0.45),
    ("PINS", 33.0, 0.45),
    ("SNAP", 8.0, 0.60),
    ("ROKU", 100.0, 0.55),
    ("SPOT", 680.0, 0.42),
    ("ETSY", 60.0, 0.55),
    ("EBAY", 90.0, 0.35),
    ("W", 90.0, 0.70),
    ("CHWY", 35.0, 0.50),
    ("AFRM", 75.0, 0.70),
    ("UPST", 48.0, 0.85),
    ("PATH", 14.0, 0.55),
    ("AI", 18.0, 0.70),
    ("IONQ", 55.0, 1.00),
    ("RGTI", 30.0, 1.20),
    ("QBTS", 25.0, 1.20),
    ("SOUN", 14.0, 0.95),
    ("BBAI", 6.0, 1.00),
    ("TSLL", 17.0, 1.10),
    ("NVDL", 80.0, 0.90),
    ("CLSK", 13.0, 0.90),
    ("HUT", 45.0, 0.95),
    ("BITF", 3.0, 1.10),
    ("CIFR", 15.0, 1.10),
    ("WULF", 13.0, 1.10),
    ("IREN", 45.0, 1.10),
    ("OKLO", 110.0, 1.00),
    ("SMR", 35.0, 1.00),
    ("VST", 190.0, 0.50),
    ("CEG", 360.0, 0.48),
    ("NRG", 160.0, 0.42),
    ("FSLR", 250.0, 0.55),
    ("ENPH", 35.0, 0.65),
    ("RUN", 18.0, 0.85),
    ("PLUG", 2.5, 1.00),
    ("QS", 14.0, 0.90),
    ("LI", 22.0, 0.55),
    ("XPEV", 22.0, 0.65),
    ("PDD", 125.0, 0.45),
    ("JD", 33.0, 0.40),
    ("BIDU", 120.0, 0.45),
    ("NTES", 140.0, 0.35),
    ("SE", 160.0, 0.45),
    ("MELI", 2100.0, 0.38),
    ("NU", 16.0, 0.45),
    ("STNE", 17.0, 0.55),
    ("BKNG", 5200.0, 0.28),
    ("EXPE", 220.0, 0.38),
    ("MAR", 265.0, 0.25),
    ("HLT", 265.0, 0.24),
    ("LVS", 55.0, 0.35),
    ("WYNN", 120.0, 0.40),
    ("MGM", 35.0, 0.40),
    ("CZR", 25.0, 0.50),
    ("RTX", 160.0, 0.24),
    ("LMT", 480.0, 0.22),
    ("NOC", 570.0, 0.22),
    ("GD", 330.0, 0.20),
    ("HON", 200.0, 0.22),
    ("MMM", 155.0, 0.25),
    ("UPS", 95.0, 0.30),
    ("FDX", 240.0, 0.30),
    ("UNP", 230.0, 0.22),
    ("CSX", 35.0, 0.24),
    ("NSC", 285.0, 0.22),
    ("PG", 150.0, 0.16),
    ("CL", 80.0, 0.18),
    ("KMB", 120.0, 0.20),
    ("MO", 58.0, 0.18),
    ("PM", 155.0, 0.25),
    ("KHC", 25.0, 0.22),
    ("GIS", 50.0, 0.22),
    ("HSY", 180.0, 0.25),
    ("MDLZ", 57.0, 0.22),
    ("STZ", 135.0, 0.30),
    ("BUD", 60.0, 0.25),
    ("TAP", 48.0, 0.28),
    ("MRK", 85.0, 0.25),
    ("BMY", 45.0, 0.28),
    ("GILD", 120.0, 0.25),
    ("AMGN", 290.0, 0.25),
    ("REGN", 560.0, 0.32),
    ("VRTX", 420.0, 0.30),
    ("BIIB", 140.0, 0.32),
    ("ISRG", 470.0, 0.32),
    ("TMO", 480.0, 0.25),
    ("DHR", 200.0, 0.27),
    ("ABT", 130.0, 0.20),
    ("MDT", 90.0, 0.20),
    ("SYK", 370.0, 0.22),
    ("BSX", 100.0, 0.25),
    ("CVS", 75.0, 0.35),
    ("CI", 270.0, 0.30),
    ("HUM", 260.0, 0.40),
    ("ELV", 330.0, 0.35),
    ("NVO", 50.0, 0.45),
    ("AZN", 80.0, 0.22),
    ("HIMS", 50.0, 0.95),
    ("AXP", 350.0, 0.28),
    ("COF", 220.0, 0.30),
    ("BLK", 1100.0, 0.25),
    ("KKR", 130.0, 0.38),
    ("BX", 150.0, 0.35),
    ("APO", 130.0, 0.38),
    ("XYZ", 75.0, 0.50),
    ("ALLY", 40.0, 0.35),
    ("USB", 48.0, 0.25),
    ("PNC", 190.0, 0.25),
    ("TFC", 45.0, 0.25),
    ("MET", 80.0, 0.24),
    ("PRU", 105.0, 0.24),
    ("AIG", 80.0, 0.25),
    ("CB", 280.0, 0.20),
    ("PGR", 240.0, 0.28),
    ("SPGI", 500.0, 0.22),
    ("MCO", 480.0, 0.23),
    ("ICE", 160.0, 0.22),
    ("CME", 270.0, 0.20),
    ("NDAQ", 90.0, 0.25),
    ("AMAT", 210.0, 0.45),
    ("LRCX", 140.0, 0.48),
    ("KLAC", 1000.0, 0.42),
    ("ADI", 240.0, 0.32),
    ("NXPI", 210.0, 0.38),
    ("MCHP", 62.0, 0.45),
    ("SWKS", 70.0, 0.42),
    ("QRVO", 90.0, 0.45),
    ("WDC", 120.0, 0.55),
    ("STX", 220.0, 0.55),
    ("ANET", 140.0, 0.50),
    ("APP", 600.0, 0.75),
    ("CRWV", 120.0, 1.00),
    ("NBIS", 100.0, 1.00),
    ("ALAB", 180.0, 0.80),
    ("CRDO", 150.0, 0.80),
    ("VRT", 170.0, 0.55),
    ("COHR", 130.0, 0.55),
    ("LITE", 200.0, 0.60),
    ("CIEN", 150.0, 0.55),
    ("GLW", 85.0, 0.35),
    ("TER", 140.0, 0.50),
    ("ENTG", 90.0, 0.50),
    ("MPWR", 950.0, 0.45),
    ("ACN", 250.0, 0.28),
    ("ADP", 300.0, 0.20),
    ("PAYX", 125.0, 0.25),
    ("FI", 130.0, 0.35),
    ("FIS", 65.0, 0.30),
    ("GPN", 80.0, 0.35),
    ("CAVA", 60.0, 0.60),
    ("CMG", 40.0, 0.40),
    ("YUM", 145.0, 0.22),
    ("DPZ", 420.0, 0.28),
    ("WING", 260.0, 0.50),
    ("TXRH", 170.0, 0.30),
    ("DRI", 185.0, 0.28),
    ("LOW", 240.0, 0.25),
    ("TJX", 145.0, 0.20),
    ("ROST", 150.0, 0.28),
    ("BBY", 80.0, 0.38),
    ("DG", 100.0, 0.38),
    ("DLTR", 100.0, 0.40),
    ("KR", 65.0, 0.24),
    ("ULTA", 530.0, 0.30),
    ("DECK", 100.0, 0.50),
    ("ONON", 40.0, 0.50),
    ("CROX", 85.0, 0.48),
    ("TTD", 45.0, 0.65),
    ("GTLB", 45.0, 0.60),
    ("S", 18.0, 0.55),
    ("ESTC", 85.0, 0.50),
    ("HUBS", 450.0, 0.45),
    ("CFLT", 23.0, 0.55),
    ("FTNT", 85.0, 0.40),
    ("CHKP", 200.0, 0.28),
    ("AKAM", 75.0, 0.38),
    ("NEE", 80.0, 0.25),
    ("DUK", 125.0, 0.18),
    ("SO", 95.0, 0.18),
    ("D", 60.0, 0.22),
    ("AEP", 115.0, 0.20),
    ("EXC", 45.0, 0.20),
    ("OXY", 42.0, 0.32),
    ("COP", 90.0, 0.28),
    ("EOG", 110.0, 0.28),
    ("SLB", 35.0, 0.35),
    ("HAL", 25.0, 0.40),
    ("DVN", 34.0, 0.35),
    ("MPC", 190.0, 0.32),
    ("PSX", 135.0, 0.30),
    ("VLO", 170.0, 0.33),
    ("FANG", 145.0, 0.32),
    ("APA", 24.0, 0.45),
    ("OKE", 72.0, 0.25),
    ("KMI", 27.0, 0.22),
    ("WMB", 60.0, 0.22),
    ("ET", 17.0, 0.22),
    ("FCX", 42.0, 0.40),
    ("NEM", 90.0, 0.40),
    ("AA", 35.0, 0.48),
    ("CLF", 12.0, 0.60),
    ("NUE", 145.0, 0.32),
    ("MP", 60.0, 0.80),
    ("ALB", 90.0, 0.50),
    ("LEN", 125.0, 0.32),
    ("DHI", 160.0, 0.32),
    ("PHM", 120.0, 0.32),
    ("TOL", 130.0, 0.33),
    ("AMT", 180.0, 0.25),
    ("PLD", 125.0, 0.24),
    ("O", 57.0, 0.18),
    ("SPG", 180.0, 0.22),
    ("EQIX", 800.0, 0.25),
    ("CCI", 95.0, 0.25),
    ("TMUS", 220.0, 0.22),
    ("CHTR", 250.0, 0.40),
    ("WBD", 22.0, 0.50),
    ("FOXA", 60.0, 0.28),
    ("TTWO", 250.0, 0.30),
    ("RDDT", 220.0, 0.80),
    ("DJT", 15.0, 0.90),
    ("CELH", 45.0, 0.60),
    ("ELF", 90.0, 0.65),
    ("MNST", 70.0, 0.25),
    ("KDP", 28.0, 0.25),
    ("ADM", 60.0, 0.28),
    ("TSN", 53.0, 0.25),
    ("CAG", 18.0, 0.25),
    ("TCOM", 70.0, 0.38),
    ("BILI", 25.0, 0.55),
    ("TME", 20.0, 0.50),
    ("TMF", 40.0, 0.45),
    ("TZA", 10.0, 0.65),
    ("SOXS", 5.0, 1.10),
    ("UPRO", 100.0, 0.45),
    ("EFA", 90.0, 0.15),
    ("VOO", 615.0, 0.15),
    ("IVV", 670.0, 0.15),
    ("VTI", 330.0, 0.15),
    ("XRT", 85.0, 0.30),
    ("XOP", 130.0, 0.32),
    ("XHB", 110.0, 0.30),
    ("XME", 80.0, 0.38),
    ("IYR", 95.0, 0.18),
    ("JETS", 25.0, 0.35),
    ("EWJ", 80.0, 0.18),
    ("INDA", 52.0, 0.16),
    ("BITO", 18.0, 0.55),
    ("ETHA", 30.0, 0.75),
    ("GDXJ", 100.0, 0.45),
    ("URA", 45.0, 0.50),
    ("LQD", 110.0, 0.07),
    ("IEF", 96.0, 0.07),
    ("CART", 40.0, 0.45),
    ("LYFT", 20.0, 0.55),
    ("GRAB", 6.0, 0.45),
    ("CPNG", 30.0, 0.40),
    ("PTON", 7.0, 0.75),
    ("FUBO", 4.0, 0.85),
    ("OPEN", 7.0, 1.20),
    ("NVAX", 8.0, 0.80),
    ("ASTS", 60.0, 1.00),
    ("RKLB", 50.0, 0.90),
    ("LUNR", 12.0, 1.00),
    ("JOBY", 15.0, 0.85),
    ("ACHR", 11.0, 0.95),
    ("BE", 90.0, 0.95),
    ("CCJ", 80.0, 0.50),
    ("HPE", 22.0, 0.40),
    ("NTAP", 110.0, 0.35),
    ("PSTG", 80.0, 0.55),
    ("SNPS", 450.0, 0.40),
    ("CDNS", 330.0, 0.35),
    ("ADSK", 310.0, 0.32),
    ("DOW", 24.0, 0.40),
    ("LYB", 50.0, 0.35),
    ("DD", 75.0, 0.28),
    ("EMR", 135.0, 0.27),
    ("ETN", 380.0, 0.35),
    ("PH", 720.0, 0.28),
    ("ITW", 250.0, 0.20),
    ("JCI", 115.0, 0.25),
    ("CARR", 60.0, 0.30),
    ("TT", 400.0, 0.27),
    ("BKR", 45.0, 0.32),
    ("ZIM", 15.0, 0.60),
    ("GEV", 600.0, 0.50),
    ("SHW", 340.0, 0.25),
    ("ECL", 270.0, 0.20),
    ("APD", 260.0, 0.25),
    ("LIN", 450.0, 0.18),
    ("TSCO", 55.0, 0.28),
    ("AZO", 3800.0, 0.25),
    ("ORLY", 95.0, 0.25),
    ("Z", 70.0, 0.45),
];

/// Nanoseconds in a year of trading time (252 sessions of 6.5 hours): the
/// clock the spot random walk's volatility is quoted in.
const TRADING_YEAR_NS: f64 = 252.0 * 23_400.0 * 1e9;
/// Mean reversion speed of log spot, per trading year (a half-life of about 3.5 sessions).
const REVERSION_PER_YEAR: f64 = 50.0;
/// Realised volatility as a fraction of implied (implied usually trades rich).
const REALISED_TO_IMPLIED: f64 = 0.85;

/// Which expiries a name lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpiryCycle {
    /// Every weekday (SPY, QQQ, IWM and the index products).
    Daily,
    /// Fridays, plus the monthlies.
    Weekly,
    /// Third Fridays only.
    Monthly,
}

/// Minimum price increments of a name's options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickRule {
    /// $0.01 at every price (SPY, QQQ, IWM).
    AllPenny,
    /// Penny Interval Program: $0.01 under $3, $0.05 from $3.
    Penny,
    /// $0.05 under $3, $0.10 from $3.
    Standard,
}

impl TickRule {
    /// The tick, in cents, for an option worth `price` dollars.
    pub fn tick_cents(self, price: f64) -> u32 {
        match (self, price < 3.0) {
            (TickRule::AllPenny, _) | (TickRule::Penny, true) => 1,
            (TickRule::Penny, false) | (TickRule::Standard, true) => 5,
            (TickRule::Standard, false) => 10,
        }
    }
}

/// One underlying: its listing facts and its current spot.
#[derive(Clone, Debug)]
pub struct Underlying {
    /// OSI root of standard (third-Friday) expiries.
    pub root: &'static str,
    /// OSI root of other expiries (`SPXW` for SPX); the same as `root` for equities.
    pub weekly_root: &'static str,
    pub reference: f64,
    pub iv: f64,
    pub cycle: ExpiryCycle,
    pub ticks: TickRule,
    /// The only venue a proprietary index product trades on.
    pub home_venue: Option<u16>,
    /// Strike spacing near the money, × 1000 as OSI writes strikes.
    pub strike_step_milli: u32,
    /// Quoted spread as a fraction of the option's value, before rounding to ticks.
    pub spread_frac: f64,
    /// Open interest of an at-the-money monthly, before noise.
    pub oi_scale: f64,
    /// Share of prints that are calls.
    pub call_share: f64,
    log_spot: f64,
    last_ns: i64,
}

impl Underlying {
    fn new(
        rank: usize,
        count: usize,
        (ticker, reference, iv): (&'static str, f64, f64),
    ) -> Underlying {
        let (root, weekly_root, home_venue) = match ticker {
            "SPX" => ("SPX", "SPXW", Some(venues::CBOE)),
            "NDX" => ("NDX", "NDXP", Some(venues::PHLX)),
            "RUT" => ("RUT", "RUTW", Some(venues::CBOE)),
            "XSP" => ("XSP", "XSP", Some(venues::CBOE)),
            _ => (ticker, ticker, None),
        };
        let broad = matches!(
            ticker,
            "SPY" | "QQQ" | "IWM" | "DIA" | "SPX" | "NDX" | "RUT" | "XSP"
        );
        let cycle = match ticker {
            "SPY" | "QQQ" | "IWM" | "SPX" | "NDX" | "RUT" | "XSP" => ExpiryCycle::Daily,
            _ if rank < 160 => ExpiryCycle::Weekly,
            _ => ExpiryCycle::Monthly,
        };
        let ticks = match ticker {
            "SPY" | "QQQ" | "IWM" => TickRule::AllPenny,
            "SPX" | "NDX" | "RUT" => TickRule::Standard,
            _ if rank < 220 => TickRule::Penny,
            _ => TickRule::Standard,
        };
        let popularity = 1.0 / (rank as f64 + 1.0);
        Underlying {
            root,
            weekly_root,
            reference,
            iv,
            cycle,
            ticks,
            home_venue,
            strike_step_milli: strike_step_milli(ticker, reference, cycle),
            spread_frac: 0.006 + 0.04 * rank as f64 / count as f64,
            oi_scale: 60_000.0 * popularity.powf(0.6),
            call_share: if broad { 0.46 } else { 0.58 },
            log_spot: reference.ln(),
            last_ns: 0,
        }
    }

    /// The spot at virtual time `now_ns`, advancing the random walk from the
    /// last time it was asked. Times earlier than the last are treated as equal.
    pub fn spot_at(&mut self, now_ns: i64, rng: &mut Rng) -> f64 {
        let dt_ns = now_ns - self.last_ns;
        if dt_ns > 0 {
            self.last_ns = now_ns;
            let dt = dt_ns as f64 / TRADING_YEAR_NS;
            let sigma = self.iv * REALISED_TO_IMPLIED;
            let decay = (-REVERSION_PER_YEAR * dt).exp();
            let stdev = sigma * ((1.0 - decay * decay) / (2.0 * REVERSION_PER_YEAR)).sqrt();
            let mean = self.reference.ln();
            self.log_spot = mean + (self.log_spot - mean) * decay + stdev * rng.normal();
        }
        self.log_spot.exp()
    }
}

/// Strike spacing near the money by price, `(below this price, with weeklies, monthly only)`,
/// × 1000: $0.50 under $25, $1 under $100, then $2.50/$5/$10 as the price rises,
/// finer for names that list weeklies.
const STRIKE_STEPS: [(f64, u32, u32); 6] = [
    (25.0, 500, 500),
    (100.0, 1_000, 1_000),
    (200.0, 1_000, 2_500),
    (500.0, 2_500, 5_000),
    (1_000.0, 5_000, 10_000),
    (f64::INFINITY, 10_000, 10_000),
];

/// Strike spacing near the money: SPY-style ETFs list $1 strikes and the
/// indexes $5 or $10; other names follow [`STRIKE_STEPS`].
fn strike_step_milli(ticker: &str, price: f64, cycle: ExpiryCycle) -> u32 {
    match ticker {
        "SPY" | "QQQ" | "IWM" | "DIA" | "XSP" => 1_000,
        "SPX" | "RUT" => 5_000,
        "NDX" => 10_000,
        _ => {
            let (_, weekly, monthly) = STRIKE_STEPS
                .iter()
                .copied()
                .find(|(below, _, _)| price < *below)
                .unwrap_or((f64::INFINITY, 10_000, 10_000));
            if cycle == ExpiryCycle::Monthly {
                monthly
            } else {
                weekly
            }
        }
    }
}

/// All underlyings, with a sampler by popularity.
#[derive(Clone, Debug)]
pub struct Universe {
    pub names: Vec<Underlying>,
    /// Cumulative popularity, normalised to end at 1.
    cumulative: Vec<f64>,
}

impl Universe {
    pub fn new() -> Universe {
        let count = LISTINGS.len();
        let names: Vec<Underlying> = LISTINGS
            .iter()
            .enumerate()
            .map(|(rank, listing)| Underlying::new(rank, count, *listing))
            .collect();
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (0..count)
            .map(|rank| {
                total += 1.0 / (rank as f64 + 1.0);
                total
            })
            .collect();
        for c in &mut cumulative {
            *c /= total;
        }
        Universe { names, cumulative }
    }

    /// Single names that news bursts can hit: the 150 most active, without
    /// the index products and the daily-expiry ETFs.
    pub fn newsworthy(&self) -> Vec<usize> {
        (0..self.names.len().min(150))
            .filter(|i| {
                self.names[*i].home_venue.is_none() && self.names[*i].cycle != ExpiryCycle::Daily
            })
            .collect()
    }

    /// An underlying's index, drawn by popularity.
    pub fn pick(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cumulative
            .partition_point(|c| *c <= u)
            .min(self.names.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowtape_core::occ::Root;

    #[test]
    fn listings_are_unique_valid_roots_with_sane_numbers() {
        let mut seen = std::collections::HashSet::new();
        for (ticker, price, iv) in LISTINGS {
            assert!(seen.insert(*ticker), "{ticker} listed twice");
            assert!(Root::new(ticker).is_ok(), "{ticker}");
            assert!(
                *price > 1.0 && *price < 50_000.0 && *iv > 0.05 && *iv < 2.0,
                "{ticker}"
            );
        }
        assert!(LISTINGS.len() >= 300);
        let u = Universe::new();
        assert!(u.names.iter().all(|n| Root::new(n.weekly_root).is_ok()));
        let news = u.newsworthy();
        assert!(
            news.len() > 100 && !news.contains(&0) && !news.contains(&2),
            "not SPY or SPX"
        );
        let spx = u.names.iter().find(|n| n.root == "SPX");
        assert_eq!(
            spx.map(|n| (n.weekly_root, n.home_venue.is_some())),
            Some(("SPXW", true))
        );
    }

    #[test]
    fn ticks_follow_the_penny_rules() {
        assert_eq!(TickRule::AllPenny.tick_cents(12.0), 1);
        assert_eq!(
            (
                TickRule::Penny.tick_cents(2.99),
                TickRule::Penny.tick_cents(3.0)
            ),
            (1, 5)
        );
        assert_eq!(
            (
                TickRule::Standard.tick_cents(0.5),
                TickRule::Standard.tick_cents(8.0)
            ),
            (5, 10)
        );
    }

    #[test]
    fn spot_wanders_but_stays_near_its_reference() {
        let mut u = Universe::new();
        let mut rng = Rng::new(3);
        let spy = &mut u.names[0];
        let session_ns = 23_400_000_000_000;
        let mut moved = false;
        for step in 1..=200 {
            let spot = spy.spot_at(step * session_ns / 20, &mut rng);
            moved |= (spot - spy.reference).abs() > 0.5;
            assert!((spot / spy.reference - 1.0).abs() < 0.2, "{spot}");
        }
        assert!(moved);
    }
}
