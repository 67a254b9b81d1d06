module parley/bench/ndjsonstreams

go 1.26.0
