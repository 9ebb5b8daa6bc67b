// Package kql parses and evaluates the subset of the Kusto Query Language
// that the Microsoft emulator answers: one table piped through where,
// project, extend, summarize (count, arg_max, ...), order by, take, top,
// count and distinct, with Kusto's scalar types (datetime at 100 ns
// precision, timespan, dynamic), string operators and common functions.
// It is a real parser and evaluator with Kusto's semantics where they
// matter to Clarion (case-sensitive ==, descending default sort, nulls,
// ties in arg_max), and Kusto-like syntax and semantic errors.
package kql
