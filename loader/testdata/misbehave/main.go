// Command misbehave is a test plugin whose behaviour is chosen by the name
// it is installed under, so one build covers every way a plugin can go
// wrong:
//
//	StdoutFirst    prints to stdout before serving (breaks the handshake)
//	WrongCookie    serves with another magic cookie
//	WrongProtocol  speaks only protocol version 99
//	CrashAtStart   panics before serving
//	HangAtStart    never serves
//	CrashLoop      serves, then panics after 300ms
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-plugin"

	"github.com/tina4go/sessions/sdk"
	"github.com/tina4go/sessions/shared"
)

type nop struct{}

func (nop) Load(context.Context, string) (sdk.Record, error) { return sdk.Record{}, sdk.ErrNotFound }
func (nop) Save(context.Context, string, sdk.Record) error   { return nil }
func (nop) Close(context.Context, string) error              { return nil }

func main() {
	name := filepath.Base(os.Args[0])
	switch name {
	case "StdoutFirst":
		fmt.Println("hello from a handler that prints to stdout")
	case "WrongCookie":
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "SOME_OTHER_APP", MagicCookieValue: "x"},
			VersionedPlugins: shared.PluginSet(sdk.NewStore(name, "0", nop{})),
			GRPCServer:       plugin.DefaultGRPCServer,
		})
		return
	case "WrongProtocol":
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig:  shared.Handshake,
			VersionedPlugins: map[int]plugin.PluginSet{99: {shared.PluginName: &shared.GRPCPlugin{Impl: sdk.NewStore(name, "0", nop{})}}},
			GRPCServer:       plugin.DefaultGRPCServer,
		})
		return
	case "CrashAtStart":
		panic("misbehave: crashing at start on purpose")
	case "HangAtStart":
		select {}
	case "CrashLoop":
		go func() {
			time.Sleep(300 * time.Millisecond)
			panic("misbehave: last words before exiting")
		}()
	}
	if err := sdk.Serve(sdk.Config{Name: name, Version: "0.0.0", Handler: nop{}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
