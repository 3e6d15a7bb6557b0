package main

// analysis is the hand-written part of the report: what bounds each figure
// and what would move it. It may quote the run's figures.
func analysis(r *Report) string {
	return "(to be written)\n"
}
