// Package echopb holds the generated Go code of the Echo example service
// (echo.proto): EchoClient, EchoServer and their messages. The generated
// files are committed, so building needs no code generator.
//
// To regenerate after editing echo.proto, run `go generate ./example/echopb/`
// from the module root with these tools on PATH:
//
//   - protoc (libprotoc 3.21 or later; Debian: apt-get install protobuf-compiler)
//   - protoc-gen-go at the google.golang.org/protobuf version in go.mod:
//     go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//   - protoc-gen-go-grpc:
//     go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
package echopb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative echo.proto
