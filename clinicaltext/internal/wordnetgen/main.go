// Command wordnetgen derives clinicaltext/wordnet.tsv, the concept categories of the claim
// checker, from Princeton WordNet 3.0 as Debian's wordnet-base package installs it:
//
//	apt-get install wordnet-base
//	go run ./clinicaltext/internal/wordnetgen -dict /usr/share/wordnet > clinicaltext/wordnet.tsv
//
// A noun lemma gets a category when one of its first senses (at most maxSense, WordNet orders
// senses by frequency) lies under one of the category's root synsets, following hyponym and
// instance links, and not under an excluded root. Roots are named by lemma and sense number,
// which are stable in WordNet 3.0. The output is sorted: one "lemma<TAB>category" per line.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// maxSense is how many of a lemma's most frequent noun senses may give it a category.
const maxSense = 2

type root struct {
	lemma string
	sense int // 1-based
}

var categories = []struct {
	name     string
	roots    []root
	excluded []root
}{
	{"drug", []root{{"drug", 1}, {"medicine", 2}, {"vaccine", 1}, {"contraceptive", 1}},
		[]root{{"drug_of_abuse", 1}, {"alcohol", 1}, {"caffeine", 1}, {"nicotine", 1}}},
	{"condition", []root{{"disease", 1}, {"illness", 1}, {"disorder", 1}, {"ailment", 1}, {"symptom", 1},
		{"injury", 1}, {"pain", 1}, {"infection", 1}, {"pathology", 2}, {"allergy", 1}, {"syndrome", 1}, {"tumor", 1}}, nil},
	{"body", []root{{"body_part", 1}, {"body_substance", 1}, {"body_fluid", 1}, {"system", 4}, {"tissue", 1}}, nil},
	{"relative", []root{{"relative", 1}, {"spouse", 1}}, nil},
	{"procedure", []root{{"medical_procedure", 1}, {"diagnostic_procedure", 1}, {"medical_care", 1}, {"surgery", 1}}, nil},
}

type synset struct {
	words    []string
	children []int64 // hyponyms and instances
	parents  []int64 // hypernyms and instance hypernyms
}

// classDepth is how many hypernym levels above a drug are listed as its classes
// ("amoxicillin" is a "penicillin", an "antibiotic", ...).
const classDepth = 4

func main() {
	dict := flag.String("dict", "/usr/share/wordnet", "WordNet dict directory")
	flag.Parse()
	if err := run(*dict); err != nil {
		fmt.Fprintln(os.Stderr, "wordnetgen:", err)
		os.Exit(1)
	}
}

func run(dict string) error {
	synsets, err := readData(filepath.Join(dict, "data.noun"))
	if err != nil {
		return err
	}
	senses, err := readIndex(filepath.Join(dict, "index.noun"))
	if err != nil {
		return err
	}
	closure := func(roots []root) (map[int64]bool, error) {
		seen := map[int64]bool{}
		var stack []int64
		for _, r := range roots {
			s := senses[r.lemma]
			if len(s) < r.sense {
				return nil, fmt.Errorf("no sense %d of %q", r.sense, r.lemma)
			}
			stack = append(stack, s[r.sense-1])
		}
		for len(stack) > 0 {
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[o] {
				continue
			}
			seen[o] = true
			stack = append(stack, synsets[o].children...)
		}
		return seen, nil
	}
	out := map[string]map[string]bool{}
	var drugs map[int64]bool
	for _, c := range categories {
		in, err := closure(c.roots)
		if err != nil {
			return err
		}
		ex, err := closure(c.excluded)
		if err != nil {
			return err
		}
		if c.name == "drug" {
			drugs = in
		}
		for lemma, offs := range senses {
			for i, o := range offs {
				if i >= maxSense {
					break
				}
				if in[o] && !ex[o] {
					if out[lemma] == nil {
						out[lemma] = map[string]bool{}
					}
					out[lemma][c.name] = true
				}
			}
		}
	}
	var lines []string
	// Drug classes: the hypernyms of a drug sense that are drugs themselves.
	for lemma, cats := range out {
		if !cats["drug"] {
			continue
		}
		classes := map[string]bool{}
		for i, o := range senses[lemma] {
			if i >= maxSense || !drugs[o] {
				continue
			}
			level := []int64{o}
			for d := 0; d < classDepth; d++ {
				var next []int64
				for _, x := range level {
					for _, p := range synsets[x].parents {
						if drugs[p] {
							next = append(next, p)
							for _, w := range synsets[p].words {
								classes[strings.ReplaceAll(w, "_", " ")] = true
							}
						}
					}
				}
				level = next
			}
		}
		w := strings.ReplaceAll(lemma, "_", " ")
		for c := range classes {
			if c != w && !strings.ContainsAny(c, "0123456789().'") {
				lines = append(lines, w+"\tisa\t"+c)
			}
		}
	}
	for lemma, cats := range out {
		w := strings.ReplaceAll(lemma, "_", " ")
		if strings.ContainsAny(w, "0123456789().'") || len(w) < 3 || strings.Count(w, " ") > 2 {
			continue
		}
		for c := range cats {
			lines = append(lines, w+"\t"+c)
		}
	}
	sort.Strings(lines)
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "# Concept categories derived from Princeton WordNet 3.0 (Debian package wordnet-base) by")
	fmt.Fprintln(w, "# clinicaltext/internal/wordnetgen; do not edit by hand. WordNet 3.0 Copyright 2006 by Princeton")
	fmt.Fprintln(w, "# University. All rights reserved. Used under the WordNet 3.0 licence, which permits use, copying,")
	fmt.Fprintln(w, "# modification and distribution with this notice: see clinicaltext/WORDNET-LICENSE.")
	fmt.Fprintln(w, "# Format: lemma<TAB>category (drug, condition, body, relative, procedure), or")
	fmt.Fprintln(w, "# lemma<TAB>isa<TAB>class for the drug classes a drug belongs to.")
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
	return w.Flush()
}

// readData reads data.noun: each synset's words and its hyponym (~) and instance (~i) links.
func readData(path string) (map[int64]*synset, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[int64]*synset{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "  ") {
			continue // licence header
		}
		if i := strings.Index(line, " | "); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		off, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("offset %q: %w", f[0], err)
		}
		n, err := strconv.ParseInt(f[3], 16, 64)
		if err != nil {
			return nil, err
		}
		s := &synset{}
		k := 4
		for j := 0; j < int(n); j++ {
			s.words = append(s.words, strings.ToLower(f[k]))
			k += 2
		}
		p, err := strconv.Atoi(f[k])
		if err != nil {
			return nil, err
		}
		k++
		for j := 0; j < p; j++ {
			sym, target, pos := f[k], f[k+1], f[k+2]
			k += 4
			if pos != "n" {
				continue
			}
			t, err := strconv.ParseInt(target, 10, 64)
			if err != nil {
				return nil, err
			}
			switch sym {
			case "~", "~i":
				s.children = append(s.children, t)
			case "@", "@i":
				s.parents = append(s.parents, t)
			}
		}
		out[off] = s
	}
	return out, sc.Err()
}

// readIndex reads index.noun: each lemma's synsets, most frequent sense first.
func readIndex(path string) (map[string][]int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]int64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "  ") {
			continue
		}
		f := strings.Fields(line)
		nSyn, _ := strconv.Atoi(f[2])
		nPtr, _ := strconv.Atoi(f[3])
		offs := f[4+nPtr+2:]
		if len(offs) != nSyn {
			return nil, fmt.Errorf("index line for %q: %d offsets, want %d", f[0], len(offs), nSyn)
		}
		for _, o := range offs {
			v, err := strconv.ParseInt(o, 10, 64)
			if err != nil {
				return nil, err
			}
			out[f[0]] = append(out[f[0]], v)
		}
	}
	return out, sc.Err()
}
