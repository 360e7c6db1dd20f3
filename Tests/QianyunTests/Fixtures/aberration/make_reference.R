#!/usr/bin/env Rscript
# Reference values for Tests/QianyunTests/AberrationTests.swift. CI has no R, so the output,
# aberration-reference.json, is committed beside this script; rerun it after changing either:
#   cd Tests/QianyunTests/Fixtures/aberration && Rscript make_reference.R
# EARS and CUSUM come from surveillance itself. CIDARS is not in R: its values come from the short
# function below, written from the method's definition with R's quantile(type = 7), so that the
# Swift running sums and sorting are checked against a plain, independent computation.
suppressPackageStartupMessages({
  library(surveillance)
  library(jsonlite)
})

set.seed(20240611)
n_long <- 1300
series <- list(
  poisson = rpois(120, 4),
  outbreak = local({
    x <- rpois(150, 6)
    x[100:110] <- x[100:110] + rpois(11, 12)
    x
  }),
  zeros_then_spike = c(rep(0L, 40), 9L, rep(0L, 15), 1L, 0L, 0L, 2L, rep(0L, 10)),
  constant = c(rep(5L, 40), 9L, rep(5L, 19)),
  sparse = rpois(200, 0.3),
  long_seasonal = local({
    t <- 1:n_long
    x <- rpois(n_long, 3 + 2 * sin(2 * pi * t / 365))
    x[1200:1215] <- x[1200:1215] + rpois(16, 6)
    x
  }),
  small = rpois(100, 1),
  large = rpois(100, 5000 + 10 * (1:100))
)

# Where each series' ranges end and (for the long one) start, to keep the file small.
window_start <- function(name, minimum) if (name == "long_seasonal") max(minimum, 1181) else minimum

cases <- list()
add_case <- function(name, method, first, last, parameters, reference, observed, upperbound, alarm) {
  cases[[length(cases) + 1]] <<- list(
    series = name, method = method, first = first, last = last, parameters = parameters,
    reference = reference, observed = I(as.integer(observed)), upperbound = I(as.numeric(upperbound)),
    alarm = I(as.logical(alarm))
  )
}

ears_settings <- list(
  list(baseline = 7, alpha = 0.001, minSigma = 0),
  list(baseline = 7, alpha = 0.05, minSigma = 0),
  list(baseline = 10, alpha = 0.001, minSigma = 0),
  list(baseline = 3, alpha = 0.01, minSigma = 0),
  list(baseline = 7, alpha = 0.025, minSigma = 0),
  list(baseline = 7, alpha = 0.001, minSigma = 1)
)
ears_lag <- c(C1 = 0, C2 = 2, C3 = 4)

for (name in names(series)) {
  x <- series[[name]]
  n <- length(x)
  for (method in names(ears_lag)) {
    for (s in ears_settings) {
      first <- window_start(name, s$baseline + ears_lag[[method]] + 1)
      ranges <- list(c(first, n))
      # A range starting later than it must: the C3 lags then come from days before the range.
      if (name == "poisson") ranges[[2]] <- c(30, 60)
      for (r in ranges) {
        control <- list(range = r[1]:r[2], method = method, baseline = s$baseline, alpha = s$alpha, minSigma = s$minSigma)
        res <- earsC(sts(observed = x), control = control)
        add_case(name, method, r[1], r[2], s, "surveillance::earsC", observed(res)[, 1], upperbound(res)[, 1], alarms(res)[, 1])
      }
    }
  }

  cusum_settings <- list(
    list(k = 1.04, h = 2.26, m = NULL, first = 29),
    list(k = 0.5, h = 4, m = NULL, first = 15),
    list(k = 1.04, h = 2.26, m = round(mean(x) + 0.35, 2), first = 1),
    list(k = 2, h = 1, m = round(mean(x) * 0.8, 2), first = 10)
  )
  for (s in cusum_settings) {
    first <- window_start(name, s$first)
    control <- list(range = first:n, k = s$k, h = s$h, m = s$m, trans = "standard")
    res <- algo.cusum(sts2disProg(sts(observed = x)), control = control)
    add_case(name, "CUSUM", first, n, list(k = s$k, h = s$h, m = s$m), "surveillance::algo.cusum",
             x[first:n], res$upperbound, res$alarm)
  }
}

cidars <- function(x, range, period, years, neighbours, percentile, minCount) {
  week <- function(end) sum(x[(end - 6):end])
  observed <- upperbound <- alarm <- c()
  for (i in range) {
    baseline <- c()
    for (y in 1:years) for (s in -neighbours:neighbours) baseline <- c(baseline, week(i - period * y + 7 * s))
    o <- week(i)
    u <- quantile(baseline, percentile / 100, type = 7, names = FALSE)
    observed <- c(observed, o)
    upperbound <- c(upperbound, u)
    alarm <- c(alarm, o > u && o >= minCount)
  }
  list(observed = observed, upperbound = upperbound, alarm = alarm)
}

cidars_settings <- list(
  list(series = "long_seasonal", period = 365, years = 3, neighbours = 1, percentile = 80, minCount = 1),
  list(series = "long_seasonal", period = 365, years = 2, neighbours = 2, percentile = 95, minCount = 3),
  list(series = "long_seasonal", period = 364, years = 3, neighbours = 0, percentile = 50, minCount = 0),
  list(series = "outbreak", period = 28, years = 3, neighbours = 1, percentile = 80, minCount = 1),
  list(series = "poisson", period = 14, years = 4, neighbours = 1, percentile = 33.3, minCount = 1),
  list(series = "sparse", period = 21, years = 5, neighbours = 2, percentile = 90, minCount = 1),
  list(series = "zeros_then_spike", period = 7, years = 2, neighbours = 0, percentile = 100, minCount = 1),
  list(series = "large", period = 14, years = 2, neighbours = 1, percentile = 0, minCount = 1)
)
for (s in cidars_settings) {
  x <- series[[s$series]]
  first <- window_start(s$series, s$period * s$years + 7 * s$neighbours + 7)
  res <- cidars(x, first:length(x), s$period, s$years, s$neighbours, s$percentile, s$minCount)
  parameters <- s[c("period", "years", "neighbours", "percentile", "minCount")]
  add_case(s$series, "CIDARS", first, length(x), parameters, "make_reference.R cidars() with quantile(type = 7)",
           res$observed, res$upperbound, res$alarm)
}

alphas <- c(0.5, 0.3, 0.1, 0.075, 0.05, 0.025, 0.01, 0.001, 1e-4, 1e-6, 1e-8, 1e-12, 1e-15, 0.9, 0.99, 0.999)
reference <- list(
  generator = "Tests/QianyunTests/Fixtures/aberration/make_reference.R",
  R = R.version.string,
  surveillance = as.character(packageVersion("surveillance")),
  jsonlite = as.character(packageVersion("jsonlite")),
  normalQuantiles = lapply(alphas, function(a) list(alpha = a, z = qnorm(1 - a))),
  series = lapply(names(series), function(name) list(name = name, counts = I(as.integer(series[[name]])))),
  cases = cases
)
writeLines(toJSON(reference, auto_unbox = TRUE, digits = NA, na = "null", null = "null"), "aberration-reference.json")
cat(length(cases), "cases,", sum(sapply(cases, function(c) length(c$alarm))), "points\n")
