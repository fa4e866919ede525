package hedging

import (
	"reflect"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// replyType makes the replies of a hedged call's hedges, of the type of
// the caller's reply, and copies the winning one into the caller's. It is
// taken from the caller's reply before any attempt may decode into it,
// and never reads that reply again until every attempt has returned.
type replyType struct {
	mt protoreflect.MessageType // a protobuf message's type; nil for others
	rt reflect.Type             // otherwise the type the reply points to
}

// replyTypeOf returns the replyType of reply, or a codes.Internal status
// when reply is not a non-nil pointer: nothing else can be made anew and
// copied into.
func replyTypeOf(reply any) (replyType, error) {
	v := reflect.ValueOf(reply)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return replyType{}, status.Errorf(codes.Internal, "grpcpool: a hedged call's reply must be a non-nil pointer to a message, got %T", reply)
	}
	if pm, ok := reply.(proto.Message); ok {
		return replyType{mt: pm.ProtoReflect().Type()}, nil
	}
	return replyType{rt: v.Type().Elem()}, nil
}

// new returns a new, empty reply.
func (t replyType) new() any {
	if t.mt != nil {
		return t.mt.New().Interface()
	}
	return reflect.New(t.rt).Interface()
}

// copy makes dst, the caller's reply, what src is: proto.Reset then
// proto.Merge for a protobuf message, an assignment of the value src
// points to otherwise. src is not used afterwards.
func (t replyType) copy(dst, src any) {
	if t.mt != nil {
		pm := dst.(proto.Message)
		proto.Reset(pm)
		proto.Merge(pm, src.(proto.Message))
		return
	}
	reflect.ValueOf(dst).Elem().Set(reflect.ValueOf(src).Elem())
}
