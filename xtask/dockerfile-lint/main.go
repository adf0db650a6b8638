// Command dockerfile-lint runs BuildKit's own Dockerfile checks, the rules `docker build --check`
// runs (github.com/moby/buildkit/frontend/dockerfile/linter: InvalidDefaultArgInFrom,
// UndefinedVar, UndefinedArgInFrom, SecretsUsedInArgOrEnv, JSONArgsRecommended, FromAsCasing,
// ConsistentInstructionCasing, ...), on a Dockerfile, with no Docker engine and no registry. It
// calls the very function the Dockerfile frontend answers the lint request with
// (dockerfile2llb.DockerfileLint), over every stage, without build arguments: a default that is
// missing or invalid shows, as it does in `docker build --check`.
//
// Usage:
//
//	dockerfile-lint [-file Dockerfile]
//
// It prints one line per warning, `<file>:<line>: <Rule>: <message> (<url>)`, then, if the
// Dockerfile does not convert, `<file>:<line>: error: <message>`; it exits 1 if it printed
// anything or cannot read the file, 0 if the Dockerfile is clean, 2 on bad arguments.
// A `# check=skip=<Rule>` or `# check=experimental=<Rule>` directive in the file is honoured, as
// by BuildKit.
//
// What differs from `docker build --check`: base images are not fetched. Each one resolves to an
// empty image for the requested platform whose only environment variable is PATH, so the checks
// that compare with the real base image (InvalidBaseImagePlatform, and UndefinedVar for a variable
// only the base image sets) see that stand-in; CopyIgnoredFile, which needs the build context and
// its .dockerignore, does not run.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/solver/pb"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

func main() {
	file := flag.String("file", "Dockerfile", "the Dockerfile to check")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: dockerfile-lint [-file Dockerfile]\n\nRuns BuildKit's Dockerfile checks (docker build --check); exit 1 on any warning.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "dockerfile-lint: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	problems, err := lint(*file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "dockerfile-lint: %s\n", err)
		os.Exit(1)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "dockerfile-lint: %d problem(s) in %s\n", len(problems), *file)
		os.Exit(1)
	}
}

// lint returns one line per warning and one for a conversion error; an error if the file cannot
// be read.
func lint(file string) ([]string, error) {
	dt, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	// The source map the frontend builds for the Dockerfile it reads (dockerui's ReadEntrypoint):
	// the lint results refer to it.
	src := llb.Local("dockerfile")
	def, err := src.Marshal(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	sourceMap := llb.NewSourceMap(&src, filepath.Base(file), "Dockerfile", dt)
	sourceMap.Definition = def
	results, err := dockerfile2llb.DockerfileLint(ctx, dt, dockerfile2llb.ConvertOpt{
		SourceMap:    sourceMap,
		MetaResolver: standIn{},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []string
	for _, w := range results.Warnings {
		at := 0
		if w.Location != nil {
			at = line(w.Location.Ranges)
		}
		text := fmt.Sprintf("%s:%d: %s: %s", file, at, w.RuleName, w.Detail)
		if w.URL != "" {
			text += " (" + w.URL + ")"
		}
		out = append(out, strings.TrimSpace(text))
	}
	// A Dockerfile that does not convert (a base image name that is not one, say): after the
	// warnings gathered on the way, as `docker build --check` shows it.
	if results.Error != nil {
		at := line(results.Error.Location.Ranges)
		out = append(out, fmt.Sprintf("%s:%d: error: %s", file, at, results.Error.Message))
	}
	return out, nil
}

// line is the first line of the first range (0 if none).
func line(ranges []*pb.Range) int {
	if len(ranges) == 0 {
		return 0
	}
	return int(ranges[0].GetStart().GetLine())
}

// standIn resolves every base image to an empty image of the requested platform, so that no
// registry is asked.
type standIn struct{}

func (standIn) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	platform := ocispecs.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		platform = *opt.ImageOpt.Platform
	}
	config := ocispecs.Image{
		Platform: platform,
		Config: ocispecs.ImageConfig{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		},
		// One layer: not `scratch`.
		RootFS: ocispecs.RootFS{Type: "layers", DiffIDs: []digest.Digest{digest.FromString(ref)}},
	}
	dt, err := json.Marshal(config)
	return ref, "", dt, err
}
